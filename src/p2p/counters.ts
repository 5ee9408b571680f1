// Bytes and requests counted by where they came from (registry, root, peer) and what this host
// served, for the daemon's status and its Prometheus metrics. Plain numbers, updated by the agent
// and the root; the metrics exporter reads `snapshot()`. No I/O, no clock.
//
//   const c = new P2PCounters();
//   c.fetched('peer', 1 << 20);            // a chunk received from a peer
//   c.failed('root'); c.fallback();        // the root was down: the chunk came from the registry
//   c.snapshot().bytes.registry

/** Where a chunk came from. `registry` is the origin, `root` the datacenter root, `peer` another agent. */
export type ChunkSource = 'registry' | 'root' | 'peer';

export const CHUNK_SOURCES: readonly ChunkSource[] = ['registry', 'root', 'peer'];

export interface P2PCountersSnapshot {
  /** Bytes of verified chunks received, by source. */
  bytes: Record<ChunkSource, number>;
  /** Successful chunk requests, by source. */
  requests: Record<ChunkSource, number>;
  /** Requests that failed (unreachable, HTTP error, timeout, wrong bytes), by source. */
  failures: Record<ChunkSource, number>;
  /** Chunks that failed verification (from a peer or the root) and were thrown away. */
  corruptChunks: number;
  /** Reads that went to the registry because the root could not be used. Never silent: also logged. */
  registryFallbacks: number;
  /** Times this host was given a new parent (slow, gone or blamed parent). */
  reparents: number;
  /** Chunk requests to a peer also sent to the next hop up because the peer was slow to answer. */
  hedgedRequests: number;
  /** Chunks pushed to children (pull-push) and bytes they carried. */
  pushedChunks: number;
  pushedBytes: number;
  /** Pushed chunks this host received from its parent and kept (verified). */
  receivedPushes: number;
  /** Bytes and requests this host served to children or proxy clients. */
  servedBytes: number;
  servedRequests: number;
}

function bySource(): Record<ChunkSource, number> {
  return { registry: 0, root: 0, peer: 0 };
}

export class P2PCounters {
  private readonly s: P2PCountersSnapshot = {
    bytes: bySource(),
    requests: bySource(),
    failures: bySource(),
    corruptChunks: 0,
    registryFallbacks: 0,
    reparents: 0,
    hedgedRequests: 0,
    pushedChunks: 0,
    pushedBytes: 0,
    receivedPushes: 0,
    servedBytes: 0,
    servedRequests: 0,
  };

  fetched(source: ChunkSource, bytes: number): void {
    this.s.bytes[source] += bytes;
    this.s.requests[source]++;
  }

  failed(source: ChunkSource): void {
    this.s.failures[source]++;
  }

  corrupt(): void {
    this.s.corruptChunks++;
  }

  hedged(): void {
    this.s.hedgedRequests++;
  }

  fallback(): void {
    this.s.registryFallbacks++;
  }

  reparented(): void {
    this.s.reparents++;
  }

  pushed(bytes: number): void {
    this.s.pushedChunks++;
    this.s.pushedBytes += bytes;
  }

  receivedPush(bytes: number): void {
    this.s.receivedPushes++;
    this.s.bytes.peer += bytes;
  }

  served(bytes: number): void {
    this.s.servedBytes += bytes;
    this.s.servedRequests++;
  }

  /** A copy of every counter. */
  snapshot(): P2PCountersSnapshot {
    return {
      ...this.s,
      bytes: { ...this.s.bytes },
      requests: { ...this.s.requests },
      failures: { ...this.s.failures },
    };
  }
}
