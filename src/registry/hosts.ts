// containerd's registry hosts configuration, as `ctr --hosts-dir` and the CRI's `config_path` read
// it: `<dir>/<registry>/hosts.toml` (else `<dir>/_default/hosts.toml`) lists the hosts to try for a
// registry, mirrors first in file order and the `server` last, each with its capabilities (pull,
// resolve, push), TLS settings (`ca`, `client`, `skip_verify`), headers and path. Parsing and
// lookup only; the transport routes requests over the hosts (transport.ts).

import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { parse } from 'smol-toml';
import { DadiError } from '../errors.js';

export const DEFAULT_HOSTS_DIR = '/etc/containerd/certs.d';

export type HostCapability = 'pull' | 'resolve' | 'push';

export interface RegistryHost {
  /** `scheme://host[:port]`. */
  origin: string;
  /** Replaces the `/v2` of the registry API paths (`/v2` unless the entry says otherwise). */
  path: string;
  capabilities: ReadonlySet<HostCapability>;
  tls?: HostTls;
  headers?: Record<string, string>;
}

export interface HostTls {
  /** Extra CA certificates (PEM). */
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  skipVerify?: boolean;
}

/** The hosts for a registry, or undefined when none are configured (the registry itself, as usual). */
export type HostsLookup = (registry: string) => Promise<RegistryHost[] | undefined>;

const ALL: readonly HostCapability[] = ['pull', 'resolve', 'push'];
/** Bigger is not a hosts file; bounds the read. */
const MAX_HOSTS_FILE = 1 << 20;
/** How long a lookup is trusted before the file is looked at again (a long-lived daemon sees edits). */
const RECHECK_MS = 10_000;

/**
 * Look registries up in `dir`: each file is parsed once and again when its modification time
 * changes (checked at most every 10 s). Errors in a file are thrown at each lookup, naming it.
 */
export function hostsDirLookup(dir: string): HostsLookup {
  const cache = new Map<string, { checked: number; mtimeMs: number; file?: string; hosts?: RegistryHost[] }>();
  return async (registry) => {
    const hit = cache.get(registry);
    if (hit && Date.now() - hit.checked < RECHECK_MS) return hit.hosts;
    const found = await findHostsFile(dir, registry);
    if (hit && found?.file === hit.file && found?.mtimeMs === hit.mtimeMs) {
      hit.checked = Date.now();
      return hit.hosts;
    }
    const hosts = found ? await loadHostsFile(found.file, registry) : undefined;
    cache.set(registry, { checked: Date.now(), mtimeMs: found?.mtimeMs ?? 0, file: found?.file, hosts });
    return hosts;
  };
}

async function findHostsFile(dir: string, registry: string): Promise<{ file: string; mtimeMs: number } | undefined> {
  // `host_port` is how containerd names the folder where ':' cannot be used.
  for (const folder of [registry, registry.replace(':', '_'), '_default']) {
    const file = join(dir, folder, 'hosts.toml');
    const st = await stat(file).catch(() => undefined);
    if (st?.isFile()) return { file, mtimeMs: st.mtimeMs };
  }
  return undefined;
}

/** Parse `file` (the hosts of `registry`), reading the certificate files it names. */
export async function loadHostsFile(file: string, registry: string): Promise<RegistryHost[]> {
  const st = await stat(file);
  if (st.size > MAX_HOSTS_FILE) throw bad(file, `${st.size} bytes, larger than a hosts file can be`);
  let doc: Record<string, unknown>;
  try {
    doc = parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw bad(file, (e as Error).message.split('\n')[0]!);
  }
  const folder = file.slice(0, file.lastIndexOf('/'));
  const hosts: RegistryHost[] = [];
  const table = doc.host ?? {};
  if (typeof table !== 'object' || Array.isArray(table)) throw bad(file, '[host] must be a table of host entries');
  for (const [url, entry] of Object.entries(table as Record<string, unknown>)) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw bad(file, `[host."${url}"] must be a table`);
    }
    hosts.push(await hostOf(url, entry as Record<string, unknown>, file, folder, `[host."${url}"]`));
  }
  const server = doc.server ?? `https://${registry === 'docker.io' ? 'registry-1.docker.io' : registry}`;
  if (typeof server !== 'string') throw bad(file, 'server must be a string URL');
  hosts.push(await hostOf(server, doc, file, folder, 'server'));
  return hosts;
}

async function hostOf(
  url: string,
  e: Record<string, unknown>,
  file: string,
  folder: string,
  where: string,
): Promise<RegistryHost> {
  let u: URL;
  try {
    u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `https://${url}`);
  } catch {
    throw bad(file, `${where}: not a URL: ${url}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw bad(file, `${where}: ${u.protocol} is not http or https`);
  let path = u.pathname.replace(/\/+$/, '');
  if (path === '') path = '/v2';
  else if (e.override_path !== true && !path.endsWith('/v2')) path += '/v2';
  const host: RegistryHost = { origin: u.origin, path, capabilities: new Set(capabilitiesOf(e, file, where)) };
  const tls: HostTls = {};
  const ca = e.ca === undefined ? [] : typeof e.ca === 'string' ? [e.ca] : e.ca;
  if (!Array.isArray(ca) || ca.some((c) => typeof c !== 'string'))
    throw bad(file, `${where}: ca must be a path or a list of paths`);
  if (ca.length > 0) tls.ca = await Promise.all(ca.map((p) => readPem(p as string, folder, file, where)));
  const client = clientPairOf(e.client, file, where);
  if (client) {
    tls.cert = await readPem(client[0], folder, file, where);
    tls.key = await readPem(client[1], folder, file, where);
  }
  if (e.skip_verify !== undefined) {
    if (typeof e.skip_verify !== 'boolean') throw bad(file, `${where}: skip_verify must be true or false`);
    tls.skipVerify = e.skip_verify;
  }
  if (Object.keys(tls).length > 0) host.tls = tls;
  if (e.header !== undefined) host.headers = headersOf(e.header, file, where);
  return host;
}

function capabilitiesOf(e: Record<string, unknown>, file: string, where: string): HostCapability[] {
  if (e.capabilities === undefined) return [...ALL];
  const c = e.capabilities;
  if (!Array.isArray(c) || c.some((x) => !ALL.includes(x as HostCapability))) {
    throw bad(file, `${where}: capabilities must be a list of ${ALL.join(', ')}`);
  }
  return c as HostCapability[];
}

/** containerd takes `client` as a path (cert and key in one file, or `name.cert` beside `name.key`), a pair, or a list of either; the first is used. */
function clientPairOf(v: unknown, file: string, where: string): [string, string] | undefined {
  if (v === undefined) return undefined;
  const first = Array.isArray(v) && Array.isArray(v[0]) ? v[0] : Array.isArray(v) && v.length === 2 ? v : [v];
  if (first.some((x: unknown) => typeof x !== 'string'))
    throw bad(file, `${where}: client must be a path or a [cert, key] pair`);
  const [cert, key] = first as string[];
  return [cert!, key ?? cert!.replace(/\.(cert|crt|pem)$/, '.key')];
}

function headersOf(v: unknown, file: string, where: string): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(file, `${where}: header must be a table`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const val = Array.isArray(x) ? x.join(', ') : x;
    if (typeof val !== 'string') throw bad(file, `${where}: header ${k} must be a string or a list of strings`);
    out[k.toLowerCase()] = val;
  }
  return out;
}

async function readPem(path: string, folder: string, file: string, where: string): Promise<Buffer> {
  const full = isAbsolute(path) ? path : join(folder, path);
  try {
    return await readFile(full);
  } catch (e) {
    throw bad(file, `${where}: cannot read ${full}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function bad(file: string, problem: string): DadiError {
  return new DadiError('EINVAL', `${file}: ${problem}`);
}
