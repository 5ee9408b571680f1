// Where the daemon's one thread was while the kernel waited: a daemon's fetch log (DADI_FETCH_LOG,
// src/util/fetch-log.ts: registry GETs, FUSE requests, event-loop lag) and its CPU profile (bench
// coldstart with DADI_BENCH_DAEMON_PROFILE=DIR, DADI_BENCH_DAEMON_PROFILE_US=200 for short
// stalls) on one clock, in ms from the first GET: each profile sample's innermost frames, each
// record with its span. The log's `clock` record ties its epoch times to the profile's monotonic µs.
//
// Usage: node --import tsx bench/loop-timeline.ts PREFIX.<pid>.jsonl CPU.<...>.<pid>.<...>.cpuprofile [FROM_MS TO_MS]

import { readFileSync } from 'node:fs';
import type { FetchLogRecord } from '../src/util/fetch-log.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [logFile, profileFile, fromArg, toArg] = process.argv.slice(2);
if (!logFile || !profileFile)
  throw new Error('usage: loop-timeline.ts FETCH_LOG.jsonl PROFILE.cpuprofile [FROM_MS TO_MS]');
const from = Number(fromArg ?? -50);
const to = Number(toArg ?? 500);

const recs = readFileSync(logFile, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as FetchLogRecord & { why: string });
const clock = recs.find((r) => r.k === 'clock');
if (!clock) throw new Error(`${logFile}: no clock record (a log from before the clock record was added?)`);
const gets = recs.filter((r) => r.k === 'get');
const base = gets.length ? Math.min(...gets.map((r) => r.t0)) : clock.t0;
/** Profile time (monotonic µs) to ms from the first GET. */
const rel = (us: number) => clock.t0 + (us - clock.off) / 1000 - base;

const p = JSON.parse(readFileSync(profileFile, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const lines: { t: number; text: string }[] = [];
let t = p.startTime;
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i]!;
  const at = rel(t);
  if (at < from || at > to) continue;
  const stack: string[] = [];
  for (let id: number | undefined = p.samples[i]; id !== undefined; id = parent.get(id)) {
    stack.push(byId.get(id)!.callFrame.functionName || '(anon)');
  }
  stack.pop(); // (root)
  if (stack[0] === '(idle)') continue;
  lines.push({ t: at, text: `      ${stack.slice(0, 9).join(' < ')}` });
}
for (const r of recs) {
  if (r.k === 'read' || r.k === 'prefetch' || r.k === 'part' || r.k === 'clock') continue;
  const at = r.t0 - base;
  if (at < from || at > to) continue;
  const span = r.t1 === undefined ? '' : ` until ${(r.t1 - base).toFixed(1)} (${(r.t1 - r.t0).toFixed(1)} ms)`;
  const what = r.k === 'fuse' ? r.blob || 'READ' : r.why;
  lines.push({ t: at, text: `## ${r.k} ${what} ${r.off}+${r.len}${span}` });
}
lines.sort((a, b) => a.t - b.t);
let last = '';
for (const l of lines) {
  if (l.text === last) continue;
  last = l.text;
  console.log(`${l.t.toFixed(1).padStart(7)} ${l.text}`);
}
