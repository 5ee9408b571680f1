// P2P distribution (issue #13): the pure decision logic (tracker, chunk scheduling, pull-push,
// counters), shared by the root, the agent inside the daemon and the scale simulator; and the
// integrity of peers' chunks (the chunk digest list format and the verifier).

export {
  CHUNK_DIGESTS_MEDIA_TYPE,
  type ChunkDigests,
  ChunkDigestsAnnotation,
  ChunkHasher,
  computeChunkDigests,
  decodeChunkDigests,
  encodeChunkDigests,
  MAX_CHUNK_DIGESTS_BYTES,
} from './chunk-digests.js';
export {
  type ChunkCheck,
  ChunkVerifier,
  type ChunkVerifierOptions,
  type VerifyMethod,
  type ZFileBlockMap,
} from './chunk-verify.js';
export { type ByteRange, CHUNK_SIZE, chunkCount, chunkRange, chunksCovering } from './chunks.js';
export { CHUNK_SOURCES, type ChunkSource, P2PCounters, type P2PCountersSnapshot } from './counters.js';
export { type HedgeDecision, HedgeGate, type HedgeOptions, WAIT_HEARTBEAT_MS } from './hedge.js';
export { type PushOptions, type PushOrder, PushPlanner } from './push.js';
export { pick, type Random, seededRandom } from './random.js';
export { ChunkBook, ChunkFetch, type FailureVerdict, type FetchFailure, type Hop, routeOf } from './schedule.js';
export {
  type HostId,
  type HostInfo,
  type HostRef,
  MAX_TREE_HOSTS,
  type PeerProblem,
  type Placement,
  Tracker,
  type TrackerOptions,
} from './tracker.js';
