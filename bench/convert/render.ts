// The conversion benchmark's result shape and its markdown report. No measuring here.

export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export interface ImageResult {
  image: string;
  source_layers_gzip_bytes: number[];
  dadi_s: Spread;
  reference_s: Spread | null;
  /** dadi's median wall time ÷ the reference's, same run (null without the reference tools). */
  ratio_vs_reference: number | null;
  /** CPU seconds (user + system, all threads and child processes). */
  dadi_cpu_s: Spread;
  reference_cpu_s: Spread | null;
  /** With --baseline-cli: the earlier build's wall and CPU seconds, and its ratio. */
  dadi_baseline_s?: Spread;
  dadi_baseline_cpu_s?: Spread;
  baseline_ratio_vs_reference?: number | null;
  goal: number;
  converted_bytes: { dadi: number[]; reference: number[] | null };
  /** Manifest digests dadi produced over the rounds (one: the conversion is deterministic). */
  dadi_manifests: string[];
}

export interface ConvertBenchResult {
  name: string;
  title: string;
  date: string;
  node: string;
  machine: { cpus: number; loadavg_start: number[]; loadavg_end: number[]; loadavg_1min_at_each_start: number[] };
  runs: number;
  reference_bin: string | null;
  unavailable: Record<string, string>;
  method: Record<string, string>;
  images: Record<string, ImageResult>;
}

const s = (x: Spread | null) => (x ? `${x.median.toFixed(2)} s (${x.min.toFixed(2)}–${x.max.toFixed(2)})` : '–');
const mb = (xs: number[] | null) => (xs ? `${(xs.reduce((a, b) => a + b, 0) / 1e6).toFixed(1)} MB` : '–');

export function renderMarkdown(r: ConvertBenchResult): string {
  const loads = r.machine.loadavg_1min_at_each_start;
  const lines = [
    `## ${r.title}`,
    '',
    `<!-- Measured ${r.date} by bench/convert/run.ts (${r.runs} alternated rounds; node ${r.node}; ${r.machine.cpus} CPUs shared with other jobs, 1-min load ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)} at the runs' starts). -->`,
    '',
    '| image | source (gzip) | reference | dadi | dadi / reference | goal | CPU: reference | CPU: dadi | converted: reference | converted: dadi |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...Object.entries(r.images).map(
      ([k, i]) =>
        `| ${k} (${i.source_layers_gzip_bytes.length} layer${i.source_layers_gzip_bytes.length > 1 ? 's' : ''}) | ${mb(i.source_layers_gzip_bytes)} | ${s(i.reference_s)} | ${s(i.dadi_s)} | ${i.ratio_vs_reference !== null ? `${i.ratio_vs_reference.toFixed(2)}×` : '–'} | ≤ ${i.goal}× | ${s(i.reference_cpu_s)} | ${s(i.dadi_cpu_s)} | ${mb(i.converted_bytes.reference)} | ${mb(i.converted_bytes.dadi)} |`,
    ),
    '',
    'Wall and CPU (user + system, every thread and child) seconds: median (min–max) of the rounds.',
    'dadi decodes a layer (gunzip, blob sha256, diff_id sha256) on a worker thread while the main thread',
    "applies it, and compresses the layer's ZFile blocks on two more as the apply writes them (the commit",
    'copies them): its wall time drops below its CPU time only when the machine has free cores for them.',
    "On a machine busier than its cores (see the load above), every contestant's wall time follows its",
    'CPU time instead, and the ratio says little about an idle machine.',
    ...Object.entries(r.images)
      .filter(([, i]) => i.dadi_baseline_s)
      .map(
        ([k, i]) =>
          `- ${k}, the baseline build: ${s(i.dadi_baseline_s ?? null)} wall, ${s(i.dadi_baseline_cpu_s ?? null)} CPU${i.baseline_ratio_vs_reference ? `, ${i.baseline_ratio_vs_reference.toFixed(2)}× the reference` : ''}`,
      ),
    '',
    ...Object.entries(r.method).map(([k, v]) => `- ${k}: ${v}`),
    ...Object.entries(r.unavailable).map(([k, v]) => `- **${k} unavailable**: ${v}`),
    '',
  ];
  return lines.join('\n');
}
