import { MemoryFile } from '../src/blockfile/memory.ts';
import { compressFile } from '../src/format/zfile/convert.ts';
import { ZFileReader } from '../src/format/zfile/reader.ts';
import { MemorySink } from '../src/blockfile/sink.ts';
import { mixedData } from '../test/zfile-fuzz.ts';
const data = mixedData(32 << 20, 5);
const sink = new MemorySink();
await compressFile(new MemoryFile(data), sink, {});
const z = await ZFileReader.open(new MemoryFile(sink.bytes()));
const buf = Buffer.allocUnsafe(4096); const blocks = z.blockCount;
let x = 12345; let bytes = 0; const t0 = performance.now();
while (performance.now() - t0 < 3000) for (let i = 0; i < 256; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; const n = await z.read(buf, ((x >>> 0) % blocks) * 4096); bytes += n; }
console.log('MB/s', bytes / 1e6 / 3, 'ratio', data.length / sink.bytes().length);
