// The request `dadi pull --containerd-address` sends to the running snapshotter, which performs the
// pull itself (pull-service.ts): one gRPC method on the snapshotter's own socket, beside
// containerd's snapshots service, with JSON messages. The client speaks it with node:http2 alone
// (cli/pull-remote.ts), so a pull starts without loading gRPC, the registry client or
// containerd's API definitions. This file holds only what both sides must agree on.

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
