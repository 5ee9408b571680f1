// Turns a recorded cold-start trace into the reads the simulator replays: for each trace record
// (a read of a layer's uncompressed LSMT file), the byte range of the layer *blob* the real read
// path fetched for it (tar view → ZFile → LSMT, the same stages a host runs), in recorded order;
// plus the blob ranges a mount reads before any record (ZFile jump table, LSMT index). Reads the
// registry's filesystem storage directly (no registry process). Not the simulator (scenario.ts).
//
// The traces are the ones bench/coldstart records for its workloads (`dadi record-trace REG/app:dadi
// app:dadi-trace -- python3 -c 'import json, http.server; print("imported")'`, and base:dadi-trace
// with `cat /etc/os-release`):
//
//   npm run bench:coldstart -- --contestants dadi-trace           # records app:dadi-trace, base:dadi-trace
//   node --import tsx bench/scale/record-reads.ts                 # → python-start.reads.json
//   node --import tsx bench/scale/record-reads.ts --repo base     # → cat-start.reads.json

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BlockFile } from '../../src/blockfile/blockfile.js';
import { LocalFile } from '../../src/blockfile/local.js';
import { observeReads } from '../../src/blockfile/observed.js';
import { openLayer } from '../../src/image/open-layer.js';
import { splitAccelerationLayer, traceOfAccelerationLayer } from '../../src/prefetch/accel-layer.js';
import { readsFile, type StartReads } from './workload.js';

const { values } = parseArgs({
  options: {
    storage: { type: 'string', default: '/var/tmp/dadi-bench/registry' },
    repo: { type: 'string', default: 'app' },
    tag: { type: 'string', default: 'dadi-trace' },
    out: { type: 'string' },
  },
});

const workload = values.repo === 'base' ? 'cat' : 'python';
const out = values.out ?? readsFile(workload);
const v2 = join(values.storage!, 'docker/registry/v2');
const blobPath = (digest: string) => join(v2, 'blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');

interface Manifest {
  layers: { digest: string; size: number; annotations?: Record<string, string> }[];
}

async function main(): Promise<void> {
  const tagLink = join(v2, 'repositories', values.repo!, '_manifests/tags', values.tag!, 'current/link');
  const manifestDigest = (await readFile(tagLink, 'utf8')).trim();
  const manifest = JSON.parse(await readFile(blobPath(manifestDigest), 'utf8')) as Manifest;
  const { lowers, accel } = splitAccelerationLayer(manifest.layers);
  if (!accel) throw new Error(`${values.repo}:${values.tag} has no acceleration layer (record a trace first)`);
  const records = await traceOfAccelerationLayer(await readFile(blobPath(accel.digest)), accel.digest);

  // Every blob read lands here, tagged with the layer it belongs to, until taken.
  let pending: [number, number, number][] = [];
  const inners: BlockFile[] = [];
  for (const [i, l] of lowers.entries()) {
    const raw = observeReads(await LocalFile.open(blobPath(l.digest)), (offset, n) => {
      if (n > 0) pending.push([i, offset, n]);
    });
    await openLayer(raw, { wrapInner: (inner) => (inners[i] = inner) });
  }
  const mountReads = pending;
  pending = [];
  const reads: StartReads['reads'] = [];
  for (const r of records) {
    const inner = inners[r.layer];
    if (!inner) throw new Error(`trace record names layer ${r.layer}; the image has ${lowers.length}`);
    await inner.read(new Uint8Array(r.count), r.offset);
    for (const x of pending) reads.push(x);
    pending = [];
  }
  const data: StartReads = {
    note:
      `Blob byte ranges read by a cold start of ${values.repo}:${values.tag} (bench/coldstart's ${workload} workload), ` +
      'from its dadi record-trace acceleration layer replayed through tar view → ZFile → LSMT by bench/scale/record-reads.ts',
    manifest: manifestDigest,
    layers: lowers.map((l) => ({ digest: l.digest, size: l.size })),
    trace_records: records.length,
    trace_bytes: records.reduce((a, r) => a + r.count, 0),
    mount_reads: mountReads,
    reads,
  };
  await writeFile(out, asText(data));
  const bytes = (xs: [number, number, number][]) => xs.reduce((a, x) => a + x[2], 0);
  console.log(
    `${out}: ${records.length} records → ${reads.length} blob reads (${bytes(reads)} bytes), mount ${mountReads.length} reads (${bytes(mountReads)} bytes)`,
  );
}

/** The JSON laid out as the repository's formatter keeps it: one read per line. */
function asText(data: StartReads): string {
  const lines = (xs: unknown[], one: (x: unknown) => string) => `[\n${xs.map((x) => `    ${one(x)}`).join(',\n')}\n  ]`;
  const read = (x: unknown) => JSON.stringify(x).replaceAll(',', ', ');
  const layer = (x: unknown) =>
    JSON.stringify(x).replace('{', '{ ').replace('}', ' }').replaceAll('":', '": ').replaceAll(',"', ', "');
  const fields = Object.entries(data).map(([k, v]) => {
    const text = Array.isArray(v) ? lines(v, k === 'layers' ? layer : read) : JSON.stringify(v);
    return `  ${JSON.stringify(k)}: ${text}`;
  });
  return `{\n${fields.join(',\n')}\n}\n`;
}

await main();
