// Starts unpack-worker.ts in a worker thread when dadi runs from its TypeScript sources (tests,
// `node --import tsx`), as compress-worker.boot.mjs does for the ZFile pool: tsx registers itself on
// the main thread only (Node 20). The built package starts dist/convert/unpack-worker.js directly.
import { register } from 'tsx/esm/api';

register();
await import('./unpack-worker.ts');
