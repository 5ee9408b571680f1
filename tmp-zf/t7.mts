import { createRequire } from 'node:module';
const { crc32c } = createRequire(import.meta.url)('@node-rs/crc32');
const require2 = createRequire(import.meta.url);
const lz4 = require2("/work/main/node_modules/lz4");
function bench(name: string, fn: () => void, N = 100000) { for (let i = 0; i < 5000; i++) fn(); const t0 = performance.now(); for (let i = 0; i < N; i++) fn(); const ns = (performance.now() - t0) * 1e6 / N; console.log(name, ns.toFixed(0), 'ns'); }
for (const size of [4096, 65536]) {
  const src = Buffer.alloc(size); src.write('hello world '.repeat(size / 12 - 1));
  const comp = Buffer.alloc(lz4.encodeBound(size)); const n = lz4.encodeBlock(src, comp); const c = comp.subarray(0, n);
  const dst = Buffer.alloc(size);
  bench(`lz4 decode ${size} (c=${n})`, () => lz4.decodeBlock(c, dst));
  bench(`crc ${size}`, () => crc32c(src, 0));
}
const tiny = Buffer.alloc(16); const tc = Buffer.alloc(64); const tn = lz4.encodeBlock(tiny, tc);
bench('lz4 decode tiny', () => lz4.decodeBlock(tc.subarray(0, tn), Buffer.alloc(16)));
bench('crc tiny', () => crc32c(tiny, 0));
