// Starts compress-worker.ts in a worker thread when dadi runs from its TypeScript sources (tests,
// `node --import tsx`): tsx's loader registers itself on the main thread only (Node 20), so register
// it here, then load the real entry. The built package starts dist/.../compress-worker.js directly.
import { register } from 'tsx/esm/api';

register();
await import('./compress-worker.ts');
