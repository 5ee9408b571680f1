// Child process of crash.test.ts: reads two blobs through a cache from a slow local source,
// forever, checking every byte, with random evictions; the test kill -9s it at random moments.
// Some workers read sequential runs, so readahead fills are in flight when the kill comes.
// Usage: node --import tsx crash-child.ts CACHE_DIR SOURCE_A SOURCE_B SEED

import { readFile } from 'node:fs/promises';
import { LocalFile } from '../blockfile/local.js';
import { BlockCache } from './cache.js';
import { CountingSource } from './testing.js';

const [dir, pathA, pathB, seedArg] = process.argv.slice(2) as [string, string, string, string];
const KiB = 1024;

async function main(): Promise<void> {
  let seed = Number(seedArg) || 1;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const truth = [await readFile(pathA), await readFile(pathB)];
  // Capacity below the two blobs together, so whole-blob evictions happen during the run too.
  const cache = await BlockCache.open(dir, {
    diskFloor: 0,
    capacity: Math.floor((truth[0]!.length + truth[1]!.length) * 0.7),
    refillSize: 64 * KiB,
    maxFetchSize: 256 * KiB,
    readahead: 512 * KiB,
  });
  const blobs = await Promise.all(
    [pathA, pathB].map(async (p, i) =>
      cache.open(`sha256:${String(i + 1).padStart(64, '0')}`, new CountingSource(await LocalFile.open(p), 2)),
    ),
  );
  process.stdout.write('ready\n');
  const worker = async () => {
    for (;;) {
      const i = rnd() < 0.5 ? 0 : 1;
      const data = truth[i]!;
      const off = Math.floor(rnd() * data.length);
      const buf = Buffer.alloc(Math.floor(rnd() * 300 * KiB) + 1);
      const n = await blobs[i]!.read(buf, off);
      if (!buf.subarray(0, n).equals(data.subarray(off, off + n))) {
        process.stderr.write(`WRONG BYTES blob ${i} at ${off}+${n}\n`);
        process.exit(3);
      }
      if (rnd() < 0.02) await blobs[i]!.evict(Math.floor(rnd() * data.length), Math.floor(rnd() * 200 * KiB));
    }
  };
  const sequential = async () => {
    for (;;) {
      const i = rnd() < 0.5 ? 0 : 1;
      const data = truth[i]!;
      const chunk = Math.floor(rnd() * 96 * KiB) + 1;
      let off = Math.floor(rnd() * data.length);
      for (let k = 0; k < 40 && off < data.length; k++, off += chunk) {
        const buf = Buffer.alloc(chunk);
        const n = await blobs[i]!.read(buf, off);
        if (!buf.subarray(0, n).equals(data.subarray(off, off + n))) {
          process.stderr.write(`WRONG BYTES blob ${i} at ${off}+${n} (sequential)\n`);
          process.exit(3);
        }
      }
    }
  };
  await Promise.all([...Array.from({ length: 4 }, worker), sequential(), sequential()]);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(2);
});
