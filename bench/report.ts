// Shared output for benchmarks: every bench script measures a candidate against a baseline in the
// same run, then calls `report()` which prints JSON, and writes bench/out/<name>.json and .md.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchRow {
  /** What was measured, e.g. "lookup 1M segments". */
  case: string;
  /** The unit of `value` and `baseline`, e.g. "M lookups/s", "MB/s". */
  unit: string;
  value: number;
  /** Baseline measured in the same run (or a reference number, named in `baselineName`). */
  baseline?: number;
  baselineName?: string;
  /** Free-form extras (sizes, counts). */
  extra?: Record<string, unknown>;
}

const outDir = join(dirname(fileURLToPath(import.meta.url)), 'out');

export function report(name: string, title: string, rows: BenchRow[]): void {
  const json = {
    name,
    title,
    date: new Date().toISOString(),
    node: process.version,
    rows: rows.map((r) => ({ ...r, ratio: r.baseline ? r.value / r.baseline : undefined })),
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  const md = [
    `## ${title}`,
    '',
    '| case | value | baseline | ratio |',
    '|---|---|---|---|',
    ...json.rows.map(
      (r) =>
        `| ${r.case} | ${fmt(r.value)} ${r.unit} | ${r.baseline !== undefined ? `${fmt(r.baseline)} ${r.unit} (${r.baselineName ?? 'baseline'})` : '–'} | ${r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '–'} |`,
    ),
    '',
  ].join('\n');
  writeFileSync(join(outDir, `${name}.md`), md);
  console.log(JSON.stringify(json, null, 2));
  console.log(md);
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** Run `fn` repeatedly for at least `ms` milliseconds; returns operations per second. */
export async function opsPerSecond(fn: () => unknown | Promise<unknown>, ms = 1000): Promise<number> {
  const start = performance.now();
  let n = 0;
  let now = start;
  while (now - start < ms) {
    const r = fn();
    if (r instanceof Promise) await r;
    n++;
    if ((n & 63) === 0) now = performance.now();
  }
  return n / ((performance.now() - start) / 1000);
}
