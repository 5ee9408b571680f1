// The command of the container a snapshot is the rootfs of, from containerd's container record:
// `ctr run` and CRI create the container (its OCI spec, with the process to run) after preparing
// its snapshot and before its task, whose shim and runc take a while to start the process. Told
// the command then, the daemon fetches the program, its libraries and (for python) the modules its
// arguments import, and reads them through the mount, before the process asks for them: what
// `dadi run` sends with its mount (runtime/bundle.ts launchFiles), one step later.

import { launchFiles } from '../runtime/bundle.js';
import type { LaunchRequest } from '../runtime/protocol.js';
import { type ContainerdClient, ContainerdError } from './containerd-client.js';

/**
 * containerd's metadata store names a snapshot to the snapshotter `NAMESPACE/TXID/KEY` (KEY its
 * own name, which `ctr run` and CRI make the container's id). Undefined for another form.
 */
export function containerdSnapshotKey(backendKey: string): { namespace: string; key: string } | undefined {
  const m = /^([^/]+)\/\d+\/(.+)$/.exec(backendKey);
  return m ? { namespace: m[1]!, key: m[2]! } : undefined;
}

/** The launch request of an OCI spec's process: its command's candidates on its PATH and its arguments. */
export function specLaunch(spec: unknown): LaunchRequest | undefined {
  const p = (spec as { process?: { args?: unknown; env?: unknown; cwd?: unknown } } | undefined)?.process;
  const args = p?.args;
  if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) return undefined;
  const env = Array.isArray(p?.env) ? p.env.filter((e): e is string => typeof e === 'string') : [];
  const l = launchFiles({ cmd: args, env, workingDir: typeof p?.cwd === 'string' ? p.cwd : undefined });
  // The user database and glibc's files came with the pull's launch files.
  return l && { exec: l.exec, args: l.args, readThrough: true };
}

/**
 * The launch request of the container whose rootfs is the snapshot `backendKey`, asked of
 * containerd at `client` (in the key's namespace). Null while there is no such container (yet:
 * `ctr run` asks for the mounts once before creating it); undefined when it names no command.
 */
export async function containerLaunch(
  client: ContainerdClient,
  backendKey: string,
): Promise<LaunchRequest | null | undefined> {
  const k = containerdSnapshotKey(backendKey);
  if (!k) return undefined;
  let reply: { container?: { snapshot_key?: string; spec?: { value?: Buffer } } };
  try {
    reply = await client.inNamespace(k.namespace).call('containers', 'Get', { id: k.key });
  } catch (e) {
    if (e instanceof ContainerdError && e.code === 'ENOTFOUND') return null;
    throw e;
  }
  const c = reply.container;
  if (!c?.spec?.value || c.snapshot_key !== k.key) return undefined;
  let spec: unknown;
  try {
    spec = JSON.parse(c.spec.value.toString());
  } catch {
    return undefined;
  }
  return specLaunch(spec);
}
