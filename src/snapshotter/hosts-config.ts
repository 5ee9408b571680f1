// containerd's registry hosts configuration (`<hosts-dir>/<host>/hosts.toml`, as `ctr --hosts-dir`
// and the CRI read it), the part dadi honours: a registry whose server or host entries use
// `http://` is reached over plain HTTP. Mirrors and TLS files are not read.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const DEFAULT_HOSTS_DIR = '/etc/containerd/certs.d';

/** True when `<dir>/<registry>/hosts.toml` points the registry at plain HTTP. */
export async function plainHttpInHostsConfig(dir: string, registry: string): Promise<boolean> {
  // containerd names the folder `host_port` when ':' is awkward; both spellings are looked at.
  for (const folder of [registry, registry.replace(':', '_')]) {
    const text = await readFile(join(dir, folder, 'hosts.toml'), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    return /^\s*(server\s*=\s*"http:\/\/|\[host\."http:\/\/)/m.test(text);
  }
  return false;
}
