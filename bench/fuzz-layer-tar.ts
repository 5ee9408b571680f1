// Question: do the OCI layer-tar reader and ext4 apply survive hostile layers? Seeded mutation
// fuzzing of layers holding every entry kind (test/layer-tar-fuzz.ts): every case must apply (and
// read back) or fail with a DadiError — no other exception, no hang, bounded memory.
// Usage: node --import tsx bench/fuzz-layer-tar.ts [cases=100000] [seed=1]

import { runLayerFuzz } from '../test/layer-tar-fuzz.js';
import { report } from './report.js';

const cases = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? 1);
const r = await runLayerFuzz(cases, seed);
for (const c of r.crashLog) console.error(c);
report('fuzz-layer-tar', 'OCI layer tar + ext4 apply mutation fuzzing', [
  {
    case: `${cases} mutated layer tars (base, upper with whiteouts, gzip)`,
    unit: 'cases/s',
    value: cases / r.seconds,
    extra: {
      cases,
      ok: r.ok,
      rejected: r.rejected,
      crashes: r.crashes,
      seed,
      seconds: +r.seconds.toFixed(1),
      peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    },
  },
]);
if (r.crashes > 0) process.exitCode = 1;
