// The request `dadi pull --containerd-address` sends to the running snapshotter, which performs the
// pull itself (pull-service.ts), spoken two ways: one line of JSON each way on a socket of its own
// beside the snapshotter's (pullSocketOf; pull-socket.ts), which the CLI tries first with node:net
// alone, and one gRPC method on the snapshotter's own socket beside containerd's snapshots service
// (for a snapshotter older than the line socket; the CLI speaks it with node:http2, loaded only
// then: loading node:http2 took 10-30 ms of every pull's start). Either way the CLI loads no gRPC,
// registry client or containerd API definitions. This file holds only what both sides must agree on.

import { DadiError } from '../errors.js';

/** The method's path on the snapshotter's socket. */
export const PULL_METHOD_PATH = '/dadi.snapshotter.v1.Pull/Pull';

export interface PullRequest {
  ref: string;
  /** containerd's socket. */
  containerdAddress: string;
  namespace: string;
  /** The dadi snapshotter's name in containerd's configuration. */
  snapshotter: string;
  /** containerd's registry hosts folder; absent: the snapshotter's own (its config / $DADI_HOSTS_DIR). */
  hostsDir?: string;
  insecure?: boolean;
  platform?: string;
}

export interface PullReply {
  name: string;
  manifestDigest: string;
  layers: number;
  registryBytes: number;
  /** Milliseconds per step inside the snapshotter (what `--timings` prints). */
  steps: { step: string; ms: number }[];
}

/** Bound on one message either way (a request is a few hundred bytes, a reply about one kilobyte). */
export const MAX_PULL_MESSAGE_BYTES = 1 << 20;

/**
 * The pull's line socket beside the snapshotter's socket `address`: the request as one line of
 * JSON, the answer as one line of JSON (PullLineAnswer), then the snapshotter closes it.
 */
export function pullSocketOf(address: string): string {
  return `${address}.pull`;
}

/** The line socket's answer: the reply, or the failed pull's error code (a DadiError code) and message. */
export type PullLineAnswer = { reply: PullReply } | { error: { code: string; message: string } };

/**
 * What `dadi pull` sends on the line socket as it starts, before its bundle has loaded (cli/pull-hint.ts):
 * the request it is about to make, for the snapshotter to give the pull a head start meanwhile
 * (its manifest and config fetched, its layers opened; containerd is not asked anything). Answered
 * `{"ahead":true}` at once (or an error). A snapshotter older than it answers an error (no ref):
 * nothing is pulled.
 */
export interface PullAhead {
  ahead: PullRequest;
}

/**
 * Collect a line socket's chunks up to the first newline, as either side reads the other's one
 * line: each chunk returns the line (without its newline) once it is complete, undefined before;
 * past MAX_PULL_MESSAGE_BYTES it throws ERANGE, `${what} over … bytes`.
 */
export function lineReader(what: string): (chunk: Buffer) => string | undefined {
  const chunks: Buffer[] = [];
  let size = 0;
  return (d) => {
    const nl = d.indexOf(10);
    chunks.push(nl < 0 ? d : d.subarray(0, nl));
    size += nl < 0 ? d.length : nl;
    if (size > MAX_PULL_MESSAGE_BYTES) throw new DadiError('ERANGE', `${what} over ${MAX_PULL_MESSAGE_BYTES} bytes`);
    return nl < 0 ? undefined : Buffer.concat(chunks).toString();
  };
}
