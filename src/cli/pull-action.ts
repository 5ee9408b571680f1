// What `dadi pull --containerd-address` does once its arguments are parsed (pull.ts declares them).
// Its imports are static so that the build can bundle the whole pull into one file
// (pull-entry.ts): a pull is on a container's start path, and loading ~200 modules one by one
// was most of its time.

import { existsSync } from 'node:fs';
import { configFileOf } from '../config/file.js';
import { parsePlatform } from '../oci/platform.js';
import { RegistryClient } from '../registry/client.js';
import { DEFAULT_HOSTS_DIR, hostsDirLookup } from '../registry/hosts.js';
import { pullIntoContainerd } from '../snapshotter/pull.js';
import { printJson } from './output.js';
import { terminalProgress } from './progress.js';

export interface PullCliOptions {
  json?: boolean;
  timings?: boolean;
  containerdAddress: string;
  namespace: string;
  snapshotter: string;
  hostsDir?: string;
  config?: string;
  insecure?: boolean;
  platform?: string;
}

export async function pullAction(ref: string, o: PullCliOptions): Promise<void> {
  // performance.now() counts from the process's start: node, the CLI and its modules before this.
  const steps: { step: string; ms: number }[] = [{ step: 'node + CLI start', ms: Math.round(performance.now()) }];
  const client = new RegistryClient({
    insecure: o.insecure ? true : undefined,
    platform: o.platform ? parsePlatform(o.platform) : undefined,
    hosts: await hostsOf(o),
  });
  const bars = await terminalProgress();
  let bar: ReturnType<NonNullable<typeof bars>['bar']> | undefined;
  try {
    const r = await pullIntoContainerd(ref, client, {
      address: o.containerdAddress,
      namespace: o.namespace,
      snapshotter: o.snapshotter,
      onLayer: (done, total) => {
        bar ??= bars?.bar('layer snapshots', total);
        bar?.update(done);
      },
      onStep: o.timings ? (step, ms) => steps.push({ step, ms }) : undefined,
    }).finally(() => bars?.stop());
    if (o.json) return printJson(o.timings ? { ...r, steps } : r);
    for (const s of steps) console.error(`${String(s.ms).padStart(6)} ms  ${s.step}`);
    console.log(r.name);
    console.error(
      `pulled ${r.name} (${r.manifestDigest}, ${r.layers} DADI layers left remote; ${r.registryBytes} bytes fetched)`,
    );
  } finally {
    await client.close();
  }
}

/**
 * --hosts-dir, else registry.hostsDir of the config file; without a file, $DADI_HOSTS_DIR or the
 * default, and the config code (schema, YAML) is not loaded.
 */
async function hostsOf(o: PullCliOptions) {
  let dir = o.hostsDir;
  if (dir === undefined) {
    const f = configFileOf({ file: o.config });
    // A named file that is missing is the loader's error to report.
    if (!f.required && !existsSync(f.path)) dir = process.env.DADI_HOSTS_DIR ?? DEFAULT_HOSTS_DIR;
    else dir = (await (await import('../config/load.js')).loadConfig({ file: o.config })).config.registry.hostsDir;
  }
  return dir ? hostsDirLookup(dir) : undefined;
}
