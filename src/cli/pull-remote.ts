// What `dadi pull --containerd-address` does: ask the running dadi snapshotter to pull (it has the
// registry connections, credentials and containerd's client warm; snapshotter/pull-service.ts),
// and print its answer. Only when no snapshotter answers at the default address does the pull run
// in this process (pull-action.ts, loaded then): containerd calls the snapshotter for every layer
// anyway, so this is for a snapshotter elsewhere or one older than its pull method. An address
// given with --snapshotter-address is used or reported, never passed over.
// Loads node built-ins only, so that the bundle (pull-entry.ts) starts in a few milliseconds, and
// without $NODE_EXTRA_CA_CERTS (bin/dadi): the request to the snapshotter is no TLS connection.

import { existsSync } from 'node:fs';
import { configFileOf, DEFAULT_SNAPSHOTTER_ADDRESS } from '../config/file.js';
import { pullThroughSnapshotter, SnapshotterUnavailable } from '../snapshotter/pull-client.js';
import type { PullReply } from '../snapshotter/pull-wire.js';
import { withExtraCaCerts } from '../util/extra-ca-certs.js';
import type { PullCliOptions } from './pull-action.js';
import { rerun } from './rerun.js';

export interface PullRemoteOptions extends PullCliOptions {
  snapshotterAddress?: string;
}

/** Pull `ref`; says who did: the snapshotter (nothing left to do here) or this process. */
export async function pullRemoteAction(ref: string, o: PullRemoteOptions): Promise<'snapshotter' | 'here'> {
  // performance.now() counts from the process's start: node, the CLI and its modules before this.
  const started = performance.now();
  const address = o.snapshotterAddress ?? (await snapshotterAddressOf(o.config));
  let r: PullReply;
  try {
    r = await pullThroughSnapshotter(address, {
      ref,
      containerdAddress: o.containerdAddress,
      namespace: o.namespace,
      snapshotter: o.snapshotter,
      ...(o.hostsDir !== undefined ? { hostsDir: o.hostsDir } : {}),
      ...(o.insecure ? { insecure: true } : {}),
      ...(o.platform ? { platform: o.platform } : {}),
    });
  } catch (e) {
    if (!(e instanceof SnapshotterUnavailable) || o.snapshotterAddress !== undefined) throw e;
    // The pull in this process opens TLS connections: it runs with $NODE_EXTRA_CA_CERTS, which
    // bin/dadi moved aside, in a new process if need be (rerun.ts).
    const env = withExtraCaCerts(process.env);
    if (env) {
      process.exitCode = await rerun(env);
      return 'here';
    }
    await (await import('./pull-action.js')).pullAction(ref, o);
    return 'here';
  }
  const inSnapshotter = r.steps.reduce((n, s) => n + s.ms, 0);
  const steps = [
    { step: 'node + CLI start', ms: Math.round(started) },
    { step: 'request to the snapshotter', ms: Math.max(0, Math.round(performance.now() - started - inSnapshotter)) },
    ...r.steps,
  ];
  const { steps: _, ...result } = r;
  if (o.json) {
    console.log(JSON.stringify(o.timings ? { ...result, steps } : result, null, 2));
    return 'snapshotter';
  }
  if (o.timings) for (const s of steps) console.error(`${String(s.ms).padStart(6)} ms  ${s.step}`);
  console.log(r.name);
  console.error(
    `pulled ${r.name} (${r.manifestDigest}, ${r.layers} DADI layers left remote; ${r.registryBytes} bytes fetched)`,
  );
  return 'snapshotter';
}

/** snapshotter.address of the config file; without a file the default (the config code is not loaded). */
async function snapshotterAddressOf(file: string | undefined): Promise<string> {
  const f = configFileOf({ file });
  // A named file that is missing is the loader's error to report.
  if (!f.required && !existsSync(f.path)) return DEFAULT_SNAPSHOTTER_ADDRESS;
  return (await (await import('../config/load.js')).loadConfig({ file })).config.snapshotter.address;
}
