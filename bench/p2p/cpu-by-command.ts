// Where a run's CPU went, by command name, read from /proc: every process's own user + system time,
// and its reaped children's (cutime + cstime). A process that ends during the run is not in the
// second reading, but its parent has reaped it by then, so its time shows as the parent's
// "children" share ("dadi run", runc and the container's command under the benchmark's own node).
// Processes are keyed by PID and start time, so a reused PID is a new process.

import { readdir, readFile } from 'node:fs/promises';

interface ProcCpu {
  comm: string;
  /** Own user + system seconds. */
  own: number;
  /** Reaped children's user + system seconds. */
  children: number;
}

export type CpuSnapshot = Map<string, ProcCpu>;

const CLK_TCK = 100;

/** Parse one /proc/PID/stat; undefined when it is malformed. */
export function parseStat(stat: string): { key: string; cpu: ProcCpu } | undefined {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = stat.slice(0, open).trim();
  const comm = stat.slice(open + 1, close);
  // Fields from the state (field 3) on: utime 14, stime 15, cutime 16, cstime 17, starttime 22.
  const f = stat.slice(close + 2).split(' ');
  if (f.length < 20) return undefined;
  const n = (i: number) => Number(f[i - 3]);
  return {
    key: `${pid}@${f[22 - 3]}`,
    cpu: { comm, own: (n(14) + n(15)) / CLK_TCK, children: (n(16) + n(17)) / CLK_TCK },
  };
}

/** Every process's CPU times now. */
export async function cpuSnapshot(): Promise<CpuSnapshot> {
  const snap: CpuSnapshot = new Map();
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d));
  await Promise.all(
    pids.map(async (pid) => {
      const s = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      const p = parseStat(s);
      if (p) snap.set(p.key, p.cpu);
    }),
  );
  return snap;
}

/**
 * CPU seconds used between two snapshots, by command ("node", "runc", "kworker/…" folded to
 * "kworker", and "<comm> children" for what a process reaped), largest first, at most `top` rows.
 */
export function cpuByCommand(
  before: CpuSnapshot,
  after: CpuSnapshot,
  top = 12,
): Array<{ command: string; cpuS: number }> {
  const sums = new Map<string, number>();
  const add = (command: string, s: number) => {
    if (s > 0) sums.set(command, (sums.get(command) ?? 0) + s);
  };
  for (const [key, a] of after) {
    const b = before.get(key);
    const comm = a.comm.replace(/\/.*$/, '');
    add(comm, a.own - (b?.own ?? 0));
    add(`${comm} children`, a.children - (b?.children ?? 0));
  }
  return [...sums]
    .map(([command, cpuS]) => ({ command, cpuS: Math.round(cpuS * 100) / 100 }))
    .sort((x, y) => y.cpuS - x.cpuS)
    .slice(0, top);
}
