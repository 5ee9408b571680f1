// P2P distribution (issue #13): the pure decision logic (tracker, chunk scheduling, pull-push,
// counters), shared by the root, the agent inside the daemon and the scale simulator.

export { type ByteRange, CHUNK_SIZE, chunkCount, chunkRange, chunksCovering } from './chunks.js';
export { CHUNK_SOURCES, type ChunkSource, P2PCounters, type P2PCountersSnapshot } from './counters.js';
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
