// Summaries and reports for the cold-start benchmark: medians per (workload, link, contestant), the
// goals of issue #11 as ratios of one run's medians, the markdown tables and a hand-written SVG bar
// chart (median bars with min–max whiskers, one panel per workload, one group per link). No
// measuring here.

import type { Sample } from './contestants.js';
import type { LinkSetting } from './net.js';
import { median } from './util.js';

export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export interface ContestantResult {
  seconds: Spread;
  registry_bytes: number;
  registry_bytes_runs: number[];
  registry_requests: number;
  /** dadi: uncompressed bytes the kernel read from the image's block device. */
  device_bytes_read?: number;
  /** dadi: median milliseconds of each step up to the first output (sums to the median time only roughly). */
  steps_ms?: Record<string, number>;
}

export interface Goal {
  goal: string;
  value: number;
  limit: number;
  met: boolean;
}

export interface CellResult {
  workload: string;
  link: string;
  rate_mbit?: number;
  rtt_ms: number;
  contestants: Record<string, ContestantResult>;
  goals: Goal[];
  /** The machine's load average when the cell's runs ended (the machine is shared). */
  loadavg_end?: number[];
}

export interface BenchResult {
  name: string;
  title: string;
  date: string;
  node: string;
  machine: { cpus: number; loadavg_start: number[]; loadavg_end: number[] };
  runs: number;
  workloads: Record<string, string[]>;
  images: Record<
    string,
    { image: string; oci_layers_gzip_bytes: number[]; oci_layers_tar_bytes: number[]; convert_s?: number }
  >;
  unavailable: Record<string, string>;
  method: Record<string, string>;
  /** How the figures were put together, when it was not one invocation. */
  note?: string;
  /** false while the run is still going (or was interrupted): not every chosen cell is there. */
  complete: boolean;
  cells: CellResult[];
  total_s: number;
}

function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs };
}

function stepMedians(samples: Sample[]): Record<string, number> | undefined {
  const withSteps = samples.filter((s) => s.steps);
  if (!withSteps.length) return undefined;
  const out: Record<string, number> = {};
  for (const { step } of withSteps[0]!.steps!) {
    // Whole ms: the median of an even number of runs is a mean of two, with float noise.
    out[step] = Math.round(median(withSteps.map((s) => s.steps!.find((x) => x.step === step)?.ms ?? 0)));
  }
  return out;
}

/** The issue's goals that this cell's contestants allow computing (ratios of medians). */
export function goals(link: LinkSetting, c: Record<string, ContestantResult>): Goal[] {
  const out: Goal[] = [];
  const cold = c['dadi-cold'];
  const sgz = c.stargz;
  // ≤ 0.8× stargz's time and ≤ 1.0× its registry bytes: dadi cold (#11), the dadi snapshotter (#12).
  for (const [name, label] of [
    ['dadi-cold', 'dadi cold'],
    ['dadi-snapshotter', 'dadi snapshotter (#12)'],
  ] as const) {
    const x = c[name];
    if (!x || !sgz) continue;
    const t = x.seconds.median / sgz.seconds.median;
    const b = x.registry_bytes / sgz.registry_bytes;
    out.push({ goal: `${label} time / stargz time`, value: t, limit: 0.8, met: t <= 0.8 });
    out.push({ goal: `${label} registry bytes / stargz registry bytes`, value: b, limit: 1.0, met: b <= 1.0 });
  }
  const trace = c['dadi-trace'];
  const warm = c['dadi-warm'];
  if (trace && warm && link.rateMbit !== undefined) {
    const limit = (1.5 * trace.registry_bytes * 8) / (link.rateMbit * 1e6) + (2 * link.rttMs) / 1000;
    const v = trace.seconds.median - warm.seconds.median;
    out.push({
      goal: 'dadi cold with trace − warm (s) vs 1.5 × bytes ÷ rate + 2 RTT',
      value: v,
      limit,
      met: v <= limit,
    });
  }
  const ctd = c.containerd;
  if (cold && ctd && link.name === '100mbit-20ms') {
    const v = cold.seconds.median / ctd.seconds.median;
    out.push({ goal: 'dadi cold time / containerd pull + run time', value: v, limit: 0.15, met: v <= 0.15 });
  }
  return out;
}

export function summarize(workload: string, link: LinkSetting, samples: Record<string, Sample[]>): CellResult {
  const contestants: Record<string, ContestantResult> = {};
  for (const [name, xs] of Object.entries(samples)) {
    const dev = xs.map((s) => s.deviceBytesRead).filter((b): b is number => b !== undefined);
    contestants[name] = {
      seconds: spread(xs.map((s) => s.seconds)),
      registry_bytes: median(xs.map((s) => s.registryBytes)),
      registry_bytes_runs: xs.map((s) => s.registryBytes),
      registry_requests: median(xs.map((s) => s.registryRequests)),
      ...(dev.length ? { device_bytes_read: median(dev) } : {}),
      ...(stepMedians(xs) ? { steps_ms: stepMedians(xs) } : {}),
    };
  }
  return {
    workload,
    link: link.name,
    rate_mbit: link.rateMbit,
    rtt_ms: link.rttMs,
    contestants,
    goals: goals(link, contestants),
  };
}

// --- markdown ---

/** A command as a shell would take it (arguments with spaces or quotes in single quotes). */
const shellWords = (cmd: string[]) =>
  cmd.map((a) => (/[\s"'$]/.test(a) ? `'${a.replace(/'/g, "'\\''")}'` : a)).join(' ');

const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
const sec = (x: Spread) => `${x.median.toFixed(2)} s (${x.min.toFixed(2)}–${x.max.toFixed(2)})`;

export function linkLabel(c: { rate_mbit?: number; rtt_ms: number }): string {
  if (c.rate_mbit === undefined) return 'loopback (no shaping)';
  const rate = c.rate_mbit >= 1000 ? `${c.rate_mbit / 1000} Gbit/s` : `${c.rate_mbit} Mbit/s`;
  return `${rate}, ${c.rtt_ms} ms RTT`;
}

function contestantNames(r: BenchResult): string[] {
  const seen = new Set<string>();
  for (const c of r.cells) for (const k of Object.keys(c.contestants)) seen.add(k);
  return CONTESTANTS.filter((k) => seen.has(k));
}

/** Every contestant of run.ts, in the order the tables and the chart show them. */
export const CONTESTANTS = [
  'dadi-cold',
  'dadi-trace',
  'dadi-warm',
  'dadi-snapshotter',
  'stargz',
  'stargz-optimized',
  'containerd',
  'waterfall',
] as const;

export function renderMarkdown(r: BenchResult): string {
  const names = contestantNames(r);
  const lines = [`## ${r.title}`, ''];
  if (r.note) lines.push(r.note, '');
  if (!r.complete)
    lines.push('**Partial: the run was still going or was interrupted; not every chosen cell is here.**', '');
  for (const [w, cmd] of Object.entries(r.workloads)) {
    const cells = r.cells.filter((c) => c.workload === w);
    if (!cells.length) continue;
    lines.push(
      `### \`${shellWords(cmd)}\` (${r.images[w]?.image ?? w} image)`,
      '',
      `Seconds from launch to the first output, median of ${r.runs} runs (min–max); registry bytes (requests), medians.`,
      '',
      `| link | ${names.join(' | ')} |`,
      `|---|${names.map(() => '---').join('|')}|`,
    );
    for (const c of cells) {
      const row = names.map((n) => {
        const x = c.contestants[n];
        return x ? `${sec(x.seconds)}<br>${mb(x.registry_bytes)} (${x.registry_requests})` : '—';
      });
      lines.push(`| ${linkLabel(c)} | ${row.join(' | ')} |`);
    }
    lines.push('');
    const goalRows = cells.flatMap((c) =>
      c.goals.map(
        (g) =>
          `| ${linkLabel(c)} | ${g.goal} | ${g.value.toFixed(3)} | ≤ ${g.limit.toFixed(3)} | ${g.met ? 'met' : '**missed**'} |`,
      ),
    );
    if (goalRows.length) lines.push('| link | goal | measured | limit | |', '|---|---|---|---|---|', ...goalRows, '');
    const stepRows = (who: string) =>
      cells.flatMap((c) => {
        const s = c.contestants[who]?.steps_ms;
        return s
          ? [
              `| ${linkLabel(c)} | ${Object.entries(s)
                .map(([k, v]) => `${k} ${v} ms`)
                .join(', ')} |`,
            ]
          : [];
      });
    const stepTables: [string, string][] = [
      [
        'dadi-cold',
        "Where dadi cold's time goes (medians, one clock: `spawn → node` is the benchmark's first-output time minus the CLI's own `--timings` steps):",
      ],
      [
        'dadi-snapshotter',
        "Where the dadi snapshotter's time goes (medians, one clock: `dadi pull` from spawn to exit, split by its `--timings` steps (the rest is `spawn, exit`), then `ctr run` to the first output):",
      ],
      [
        'stargz',
        "Where stargz's time goes (medians, one clock: `ctr-remote image rpull`, which mounts the layers, from spawn to exit, then `ctr run` to the first output):",
      ],
      [
        'stargz-optimized',
        "Where optimized stargz's time goes (medians, one clock: `ctr-remote image rpull`, which mounts the layers and prefetches the files the recorded run read, from spawn to exit, then `ctr run` to the first output):",
      ],
      [
        'containerd',
        "Where containerd's time goes (medians, one clock: `ctr images pull` (download and unpack) from spawn to exit, then `ctr run` to the first output):",
      ],
    ];
    for (const [who, title] of stepTables) {
      const rows = stepRows(who);
      if (rows.length) lines.push(title, '', '| link | steps until the first output |', '|---|---|', ...rows, '');
    }
    const devRows = cells.flatMap((c) => {
      const x = c.contestants['dadi-cold'];
      return x?.device_bytes_read !== undefined
        ? [`| ${linkLabel(c)} | ${mb(x.registry_bytes)} | ${mb(x.device_bytes_read)} |`]
        : [];
    });
    if (devRows.length) {
      lines.push(
        'dadi cold: compressed bytes fetched, and uncompressed bytes the kernel read from the block device (different units: not a ratio).',
        '',
        '| link | registry bytes (compressed) | device reads (uncompressed) |',
        '|---|---|---|',
        ...devRows,
        '',
      );
    }
  }
  for (const [w, img] of Object.entries(r.images)) {
    const gz = img.oci_layers_gzip_bytes.reduce((a, b) => a + b, 0);
    const tar = img.oci_layers_tar_bytes.reduce((a, b) => a + b, 0);
    lines.push(
      `Image for ${w}: \`${img.image}\`, ${img.oci_layers_gzip_bytes.length} layer(s), ${mb(gz)} gzip (${mb(tar)} tar).`,
    );
  }
  lines.push('');
  for (const [c, why] of Object.entries(r.unavailable)) lines.push(`Not run: ${c} — ${why}.`, '');
  lines.push(
    'Method: the images are pushed as OCI (skopeo) to `docker-registry`, converted with `dadi convert` (DADI) and',
    '`ctr-remote image convert --estargz --oci` (eStargz). The registry and the host under test sit in two network',
    'namespaces joined by a veth pair shaped with tbf on both ends (no shaping on loopback); a user-space proxy on the',
    'host side adds the round trip and counts requests and response body bytes. Contestants alternate, each round',
    "starting with the next one; every side's daemons start on empty state before the clock (a new dadi daemon with an",
    'empty block cache, past its start-up warm-up; a new private containerd 1.6 and stargz snapshotter 0.12 without',
    "background fetch); this host's page cache is dropped before every run, while the registry's storage stays in",
    'memory (vmtouch -l), as a remote registry serving the same blobs run after run has them (the registry shares this',
    'host, so the drop would otherwise make it read every blob from disk). dadi: `dadi run --rm` (built CLI); warm =',
    'the block cache left by the cold run.',
    'stargz: `ctr-remote image rpull` + `ctr run --snapshotter stargz`; stargz-optimized: the same on the image',
    '`ctr-remote image optimize --oci` made for the workload (its recorded run; the snapshotter prefetches those',
    "files at rpull), from the same image with the parent directories umoci's diff layers leave out added to each",
    'layer (as `docker build` writes them; the optimizer needs them). containerd: `ctr images pull` + `ctr run`',
    '(overlayfs). waterfall: `skopeo copy` to an OCI layout, `umoci unpack`, `runc run`.',
    '',
    `Machine: ${r.machine.cpus} CPUs; load average ${r.machine.loadavg_start.map((x) => x.toFixed(1)).join(' ')} at the start, ${r.machine.loadavg_end.map((x) => x.toFixed(1)).join(' ')} at the end (other jobs share the machine: read the times as ratios).`,
    '',
    'Reproduce (root, Debian 12): `npm run bench:coldstart -- [--runs 3] [--links …] [--workloads …] [--contestants …]`.',
    '',
  );
  return `${lines.join('\n')}\n`;
}

// --- SVG ---

const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const COLORS: Record<string, string> = {
  'dadi-cold': '#2f7ed8',
  'dadi-trace': '#174a85',
  'dadi-warm': '#76b041',
  'dadi-snapshotter': '#7b4fb0',
  stargz: '#e4a11b',
  'stargz-optimized': '#a8730f',
  containerd: '#c0504d',
  waterfall: '#9aa5b1',
};

export function renderSvg(r: BenchResult): string {
  const names = contestantNames(r);
  const workloads = Object.keys(r.workloads).filter((w) => r.cells.some((c) => c.workload === w));
  const W = 900;
  const panelH = 300;
  const left = 70;
  const right = 20;
  const top = 60;
  const plotW = W - left - right;
  const H = top + workloads.length * (panelH + 50) + 30;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(r.title)}</text>`,
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">seconds to first output (median, whiskers min–max; lower is better; log scale)</text>`,
  ];
  names.forEach((n, k) => {
    const lx = left + k * 130;
    out.push(
      `<rect x="${lx}" y="${H - 22}" width="12" height="12" fill="${COLORS[n] ?? '#888'}"/>`,
      `<text x="${lx + 17}" y="${H - 12}" font-size="11">${esc(n)}</text>`,
    );
  });
  workloads.forEach((w, p) => {
    const cells = r.cells.filter((c) => c.workload === w);
    const all = cells.flatMap((c) => Object.values(c.contestants).flatMap((x) => [x.seconds.min, x.seconds.max]));
    // No samples yet (or a run of only dadi-warm, which needs dadi-cold): an empty 0.1–1 s axis, not
    // an infinite one (the tick loop below would never end).
    if (!all.length) all.push(0.1, 1);
    const lo = 10 ** Math.floor(Math.log10(Math.max(Math.min(...all), 0.01)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, lo * 10)));
    const py = top + p * (panelH + 50) + 20;
    const plotH = panelH - 40;
    const y = (v: number) =>
      py + plotH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / Math.log10(hi / lo)) * plotH;
    out.push(`<text x="${left}" y="${py - 6}" font-weight="bold">${esc(shellWords(r.workloads[w]!))}</text>`);
    for (let v = lo; v <= hi * 1.0001; v *= 10) {
      out.push(
        `<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e3e3e3"/>`,
        `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${+v.toFixed(3)} s</text>`,
      );
    }
    const groupW = plotW / Math.max(cells.length, 1);
    const barW = Math.min(40, (groupW * 0.85) / Math.max(names.length, 1));
    cells.forEach((c, g) => {
      const gx = left + g * groupW + (groupW - barW * names.length) / 2;
      names.forEach((n, k) => {
        const x = c.contestants[n];
        if (!x) return;
        const bx = gx + k * barW;
        const cx = bx + barW / 2;
        const sp = x.seconds;
        out.push(
          `<rect x="${(bx + 1).toFixed(1)}" y="${y(sp.median).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(py + plotH - y(sp.median)).toFixed(1)}" fill="${COLORS[n] ?? '#888'}"/>`,
          `<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${y(sp.min).toFixed(1)}" y2="${y(sp.max).toFixed(1)}" stroke="#222"/>`,
          `<text x="${cx.toFixed(1)}" y="${(y(sp.max) - 4).toFixed(1)}" text-anchor="middle" font-size="9">${sp.median < 10 ? sp.median.toFixed(2) : sp.median.toFixed(1)}</text>`,
        );
      });
      out.push(
        `<text x="${(left + g * groupW + groupW / 2).toFixed(1)}" y="${py + plotH + 16}" text-anchor="middle">${esc(linkLabel(c))}</text>`,
      );
    });
    out.push(`<line x1="${left}" x2="${W - right}" y1="${py + plotH}" y2="${py + plotH}" stroke="#444"/>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}
