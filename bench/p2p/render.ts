// The P2P benchmark's report: the headline numbers (the issue's required top-level keys), the
// baseline and P2P columns, the fault runs, and a small SVG (registry egress and when each host's
// container printed).

import type { AccessProbe, StartOutcome } from './scenarios.js';

export interface ModeResult {
  mode: 'baseline' | 'p2p';
  hosts: number;
  single: StartOutcome;
  all: StartOutcome;
  faults: StartOutcome[];
  noAccess?: { host: number; runExit: number; printed: boolean; probes: AccessProbe[]; gotBytes: number };
}

export interface Headline {
  hosts: number;
  /** Registry egress with all hosts ÷ with one host (P2P; baseline when P2P did not run). */
  registry_egress_ratio: number | null;
  /** Time until all printed ÷ one host's cold start. */
  all_started_ratio: number | null;
  /** Wrong output bytes summed over the fault runs (null: no fault run). */
  wrong_bytes: number | null;
  stuck_hosts: number | null;
  /** Which mode the headline numbers come from. */
  headline_mode: 'p2p' | 'baseline' | null;
  no_access_got_bytes: number | null;
  upload_spread: UploadSpread | null;
  baseline: { registry_egress_ratio: number | null; all_started_ratio: number | null } | null;
  /** Seconds between the first and the last host printing (the headline run). */
  start_spread_s: number | null;
  /** P2P: registry egress with all hosts ÷ one host's egress without P2P (its 1 MiB chunks cost that much more). */
  egress_vs_one_host_without_p2p: number | null;
  /** P2P: time until all printed ÷ the same without P2P. */
  all_started_vs_without_p2p: number | null;
  /** How much of the headline's all-started time this machine's cores alone explain. */
  cpu_accounting: CpuAccounting | null;
}

/**
 * The headline run's CPU: N hosts' starts share this machine's cores, so the time until all printed
 * is at least their CPU seconds ÷ the cores (the floor). What remains above the floor is waiting
 * (network, the P2P path, ordering), not contention.
 */
export interface CpuAccounting {
  cores: number;
  /** Machine CPU seconds (all processes, /proc/stat) of the one-host start and of the all-host start. */
  one_host_cpu_s: number;
  all_hosts_cpu_s: number;
  /** all_hosts_cpu_s ÷ hosts: one start's CPU when N run at once. */
  per_host_cpu_s: number;
  /** Daemons' and the root's share of all_hosts_cpu_s (the rest: runc, `dadi run`, registry, kernel…). */
  daemons_cpu_s: number;
  root_cpu_s: number;
  /** all_hosts_cpu_s ÷ cores: the shortest the all-host start could take on this machine. */
  floor_s: number;
  /** floor_s ÷ one host's cold start: the all_started_ratio the cores alone force. */
  floor_ratio: number;
  /** all printed − floor_s: time not explained by CPU contention. */
  above_floor_s: number;
}

export interface UploadSpread {
  min: number;
  median: number;
  max: number;
  /** Standard deviation ÷ mean of the hosts' uploads. */
  cv: number;
}

export interface BenchReport extends Headline {
  name: string;
  title: string;
  date: string;
  node: string;
  machine: { cpus: number; loadavg_start: number[]; loadavg_end: number[] };
  setup: Record<string, unknown>;
  unavailable: Record<string, string>;
  complete: boolean;
  modes: ModeResult[];
  total_s: number;
}

function ratios(m: ModeResult | undefined) {
  if (!m) return null;
  const egress = m.single.registryBytes > 0 ? m.all.registryBytes / m.single.registryBytes : null;
  const started =
    m.all.allStartedS !== undefined && m.single.allStartedS ? m.all.allStartedS / m.single.allStartedS : null;
  return { registry_egress_ratio: egress, all_started_ratio: started };
}

export function uploadSpread(o: StartOutcome): UploadSpread {
  const up = o.perHost
    .filter((h) => !h.excused)
    .map((h) => h.uploadBytes)
    .sort((a, b) => a - b);
  const mean = up.reduce((a, b) => a + b, 0) / up.length;
  const sd = Math.sqrt(up.reduce((a, b) => a + (b - mean) ** 2, 0) / up.length);
  return { min: up[0]!, median: up[up.length >> 1]!, max: up[up.length - 1]!, cv: mean > 0 ? sd / mean : 0 };
}

/** The headline: from the P2P run of `hosts` hosts when there is one, else from the baseline. */
export function summarizeFaults(hosts: number, results: ModeResult[], cores?: number): Headline {
  const of = (mode: string) => results.find((r) => r.mode === mode && r.hosts === hosts);
  const p2p = of('p2p');
  const base = of('baseline');
  const head = p2p ?? base;
  const r = ratios(head);
  const faults = head?.faults ?? [];
  return {
    hosts,
    registry_egress_ratio: r?.registry_egress_ratio ?? null,
    all_started_ratio: r?.all_started_ratio ?? null,
    wrong_bytes: faults.length ? faults.reduce((a, f) => a + f.wrongBytes, 0) : null,
    stuck_hosts: faults.length ? faults.reduce((a, f) => a + f.stuckHosts, 0) : null,
    headline_mode: head?.mode ?? null,
    no_access_got_bytes: head?.noAccess?.gotBytes ?? null,
    upload_spread: head ? uploadSpread(head.all) : null,
    baseline: ratios(base),
    start_spread_s:
      head?.all.allStartedS !== undefined && head.all.firstStartedS !== undefined
        ? head.all.allStartedS - head.all.firstStartedS
        : null,
    egress_vs_one_host_without_p2p: p2p && base ? p2p.all.registryBytes / base.single.registryBytes : null,
    all_started_vs_without_p2p:
      p2p?.all.allStartedS !== undefined && base?.all.allStartedS ? p2p.all.allStartedS / base.all.allStartedS : null,
    cpu_accounting: head && cores ? cpuAccounting(head, cores) : null,
  };
}

function cpuAccounting(m: ModeResult, cores: number): CpuAccounting | null {
  const one = m.single.cpuSeconds;
  const all = m.all.cpuSeconds;
  if (!one || !all || m.all.allStartedS === undefined || !m.single.allStartedS) return null;
  const floor = all.machine / cores;
  return {
    cores,
    one_host_cpu_s: one.machine,
    all_hosts_cpu_s: all.machine,
    per_host_cpu_s: all.machine / m.hosts,
    daemons_cpu_s: all.daemons,
    root_cpu_s: all.root,
    floor_s: floor,
    floor_ratio: floor / m.single.allStartedS,
    above_floor_s: m.all.allStartedS - floor,
  };
}

const MB = (b: number) => (b / 1e6).toFixed(1);
const S = (s: number | undefined) => (s === undefined ? '—' : s.toFixed(2));
const PCT = (x: number | undefined) => (x === undefined ? '—' : `${Math.round(x * 100)}%`);
const X = (x: number | null | undefined) => (x === null || x === undefined ? '—' : `${x.toFixed(2)}×`);

function cpuParagraph(c: CpuAccounting, r: BenchReport): string {
  return (
    `CPU accounting (headline run): one host's cold start used ${S(c.one_host_cpu_s)} CPU s of the machine; the ${r.hosts} hosts at once used ${S(c.all_hosts_cpu_s)} CPU s ` +
    `(${S(c.per_host_cpu_s)} s per host; daemons ${S(c.daemons_cpu_s)} s, root ${S(c.root_cpu_s)} s, the rest runc, \`dadi run\`, the registry and the kernel). ` +
    `On ${c.cores} cores that is a floor of ${S(c.floor_s)} s, ${X(c.floor_ratio)} one host's cold start: the all started ratio this machine's cores force before any network or P2P wait. ` +
    `The run took ${S(c.above_floor_s)} s more than that floor (the CPU is counted from the start until every \`dadi run\` ended, containers' exit and \`--rm\` included, so the floor is an upper bound of the CPU before the last print). ` +
    "Near zero or below: the start is bound by this machine's cores, not by the network or the P2P path. The ≤ 1.5× goal needs hosts with cores of their own (bench/scale simulates them)."
  );
}

export function renderMarkdown(r: BenchReport): string {
  const lines = [
    `## ${r.title}`,
    '',
    `${r.date}, Node ${r.node}, ${r.machine.cpus} CPUs (load ${r.machine.loadavg_start.map((x) => x.toFixed(1)).join(' ')} at the start).` +
      ` Workload \`${(r.setup.workload as string[]).join(' ')}\` on ${r.setup.image}; registry uplink ${r.setup.uplink_mbit} Mbit/s, host links ${r.setup.host_mbit} Mbit/s, +${r.setup.registry_rtt_ms} ms round trip to the registry; P2P fan-out ${r.setup.fanout ?? '—'}. Build: ${r.setup.build ?? 'this tree'}.`,
    r.complete ? '' : '\n**Incomplete run**: the numbers below are what was measured before it stopped.\n',
    `Headline (${r.headline_mode ?? 'nothing'} run, ${r.hosts} hosts): registry egress ratio ${X(r.registry_egress_ratio)} (goal ≤ 1.2×), all started ratio ${X(r.all_started_ratio)} (goal ≤ 1.5×), wrong bytes ${r.wrong_bytes ?? '—'}, stuck hosts ${r.stuck_hosts ?? '—'}, bytes the no-access host got ${r.no_access_got_bytes ?? '—'}; first to last printed ${S(r.start_spread_s ?? undefined)} s.` +
      (r.egress_vs_one_host_without_p2p !== null
        ? ` Against no P2P: registry egress of all ${r.hosts} hosts ${X(r.egress_vs_one_host_without_p2p)} one host's without P2P, time until all printed ${X(r.all_started_vs_without_p2p)} the no-P2P time.`
        : ''),
    ...(r.cpu_accounting ? ['', cpuParagraph(r.cpu_accounting, r)] : []),
    '',
    '| mode | hosts | registry MB, 1 host | registry MB, all | egress ratio | 1 host cold s | first printed s | all printed s | ratio | CPU busy | upload min / median / max MB |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const m of r.modes) {
    const q = ratios(m)!;
    const u = uploadSpread(m.all);
    lines.push(
      `| ${m.mode === 'baseline' ? 'no P2P (baseline)' : 'P2P'} | ${m.hosts} | ${MB(m.single.registryBytes)} | ${MB(m.all.registryBytes)} | ${X(q.registry_egress_ratio)} | ${S(m.single.allStartedS)} | ${S(m.all.firstStartedS)} | ${S(m.all.allStartedS)} | ${X(q.all_started_ratio)} | ${PCT(m.all.cpuBusy)} | ${MB(u.min)} / ${MB(u.median)} / ${MB(u.max)} |`,
    );
  }
  lines.push(
    '',
    '### Where the CPU time went, where the bytes came from',
    '',
    `CPU floor = CPU seconds the whole machine was busy during the run ÷ its ${r.machine.cpus} cores: the shortest the run could have taken with that work; an all-printed time near it means the start was bound by this machine's cores. Daemons / root = CPU seconds of those processes (the rest: the \`dadi run\` clients, runc, the registry, and whatever else ran on the machine). Bytes by source are the agents' counters (verified chunks, pushes included).`,
    '',
    '| mode | hosts | run | all printed s | CPU floor s | machine CPU s | daemons CPU s | root CPU s | root ← registry MB | agents ← root / peers / registry MB | fallbacks | re-parents | pushed MB |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const m of r.modes) {
    for (const [run, o] of [
      ['1 host', m.single],
      ['all', m.all],
    ] as const) {
      const c = o.cpuSeconds;
      const t = o.tally;
      lines.push(
        `| ${m.mode} | ${m.hosts} | ${run} | ${S(o.allStartedS)} | ${c ? S(c.machine / r.machine.cpus) : '—'} | ${S(c?.machine)} | ${S(c?.daemons)} | ${S(c?.root)} | ${t ? MB(t.rootRegistryBytes) : '—'} | ${t ? `${MB(t.agentBytes.root)} / ${MB(t.agentBytes.peer)} / ${MB(t.agentBytes.registry)}` : '—'} | ${t?.registryFallbacks ?? '—'} | ${t?.reparents ?? '—'} | ${t ? MB(t.pushedBytes) : '—'} |`,
      );
    }
  }
  const byCommand = r.modes.flatMap((m) =>
    (
      [
        ['1 host', m.single],
        ['all', m.all],
      ] as const
    ).flatMap(([run, o]) =>
      o.cpuByCommand?.length
        ? [`| ${m.mode} | ${m.hosts} | ${run} | ${o.cpuByCommand.map((c) => `${c.command} ${S(c.cpuS)}`).join(', ')} |`]
        : [],
    ),
  );
  if (byCommand.length) {
    lines.push(
      '',
      'CPU seconds by command (/proc: each process\'s own time, and "X children" for what process X reaped: `dadi run`, runc and the containers end during the run and show under the benchmark\'s node), largest first:',
      '',
      '| mode | hosts | run | CPU s by command |',
      '|---|---|---|---|',
      ...byCommand,
    );
  }
  const faulty = r.modes.filter((m) => m.faults.length);
  if (faulty.length) {
    lines.push(
      '',
      '### Faults',
      '',
      '| mode | fault | registry MB | all printed s | CPU busy | wrong bytes | stuck hosts | notes |',
      '|---|---|---|---|---|---|---|---|',
    );
    for (const m of faulty) {
      for (const f of m.faults) {
        lines.push(
          `| ${m.mode} | ${f.fault} | ${MB(f.registryBytes)} | ${S(f.allStartedS)} | ${PCT(f.cpuBusy)} | ${f.wrongBytes} | ${f.stuckHosts} | ${f.notes.join('; ') || '—'} |`,
        );
      }
    }
  }
  const missing = Object.entries(r.unavailable);
  if (missing.length) lines.push('', ...missing.map(([k, v]) => `Not run: ${k}: ${v}.`));
  lines.push(
    '',
    `Method: ${r.setup.network}. Timing ${r.setup.timing}; ${r.setup.cold}. Upload = bytes each host's veth sent during the run. Wrong bytes = container stdout bytes that differ from the source image's file. Stuck = hosts (not killed, with access) that did not print. CPU busy = share of the machine's CPU time (all cores, /proc/stat) that was busy during the run: near 100% the start is bound by this machine's cores, not by the network.`,
    '',
  );
  return lines.join('\n');
}

/** Two panels: registry egress per mode and host count; each host's first-output time, sorted. */
export function renderSvg(r: BenchReport): string {
  const W = 760;
  const H = 310;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="10" y="16" font-size="13">${esc(r.title)}</text>`,
  ];
  const colors: Record<string, string> = { baseline: '#999999', p2p: '#2b6cb0' };
  // Panel 1: egress bars.
  const short = (m: ModeResult) => (m.mode === 'baseline' ? 'no P2P' : 'P2P');
  const bars = r.modes.flatMap((m) => [
    { mode: short(m), hosts: 1, v: m.single.registryBytes, c: colors[m.mode]! },
    { mode: short(m), hosts: m.hosts, v: m.all.registryBytes, c: colors[m.mode]! },
  ]);
  const maxB = Math.max(1, ...bars.map((b) => b.v));
  const x0 = 40;
  const y0 = 260;
  const ph = 200;
  const step = Math.min(55, 330 / Math.max(1, bars.length));
  out.push(`<text x="${x0}" y="40">registry egress (MB) by hosts started</text>`);
  bars.forEach((b, i) => {
    const h = (b.v / maxB) * ph;
    const x = x0 + i * step;
    out.push(`<rect x="${x}" y="${y0 - h}" width="${step - 8}" height="${h}" fill="${b.c}"/>`);
    out.push(`<text x="${x}" y="${y0 - h - 3}">${MB(b.v)}</text>`);
    out.push(`<text x="${x}" y="${y0 + 14}">${b.mode}</text>`);
    out.push(`<text x="${x}" y="${y0 + 27}">${b.hosts} h</text>`);
  });
  // Panel 2: sorted first-output times of the all-hosts runs.
  const px = 400;
  const pw = 340;
  const runs = r.modes.map((m) => ({
    m,
    t: m.all.perHost
      .map((h) => h.firstOutputS)
      .filter((s): s is number => s !== undefined)
      .sort((a, b) => a - b),
  }));
  const maxT = Math.max(0.1, ...runs.flatMap((x) => x.t));
  const maxN = Math.max(1, ...runs.map((x) => x.t.length));
  out.push(`<text x="${px}" y="40">seconds until each host printed (sorted), max ${maxT.toFixed(1)} s</text>`);
  out.push(`<line x1="${px}" y1="${y0}" x2="${px + pw}" y2="${y0}" stroke="black"/>`);
  out.push(`<line x1="${px}" y1="${y0}" x2="${px}" y2="${y0 - ph}" stroke="black"/>`);
  for (const { m, t } of runs) {
    const pts = t.map((s, i) => `${(px + ((i + 1) / maxN) * pw).toFixed(1)},${(y0 - (s / maxT) * ph).toFixed(1)}`);
    out.push(`<polyline fill="none" stroke="${colors[m.mode]}" stroke-width="2" points="${pts.join(' ')}"/>`);
  }
  out.push(`<text x="${px}" y="${y0 + 14}">hosts →</text>`);
  let ly = 60;
  for (const m of r.modes) {
    out.push(`<rect x="${px + 10}" y="${ly - 9}" width="10" height="10" fill="${colors[m.mode]}"/>`);
    out.push(`<text x="${px + 25}" y="${ly}">${m.mode === 'baseline' ? 'no P2P' : 'P2P'}, ${m.hosts} hosts</text>`);
    ly += 14;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
