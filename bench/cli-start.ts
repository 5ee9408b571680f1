// The start of the dadi commands on a container's start path, alone: from spawning `dadi` (the
// installed launcher, bin/dadi, with this machine's environment, NODE_EXTRA_CA_CERTS included) to
// its exit, for a command that starts, does one quick thing and ends:
// - `dadi ps --json` on an empty state folder (the client bundle: parse, no daemon to ask, list);
// - `dadi pull` with no snapshotter at the address named (the pull bundle: parse, one refused
//   connection, the error).
// Each round runs every build in turn; the baseline is another tree's build (`--baseline DIR`, a
// checkout after `npm run build`), measured in the same run. `--cold` drops the page cache before
// every start (root; take the machine's exclusive bench lock), as bench/coldstart does.
//
//   node --import tsx bench/cli-start.ts [--runs 21] [--baseline DIR] [--cold]

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildCli, REPO_ROOT } from './coldstart/image.js';
import { median } from './coldstart/util.js';
import { type BenchRow, report } from './report.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '21' },
    baseline: { type: 'string' },
    cold: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new Error(`--runs ${values.runs}: 1 to 1000`);

/** Wall milliseconds from spawn to exit of `cmd args` (its output discarded). */
function timed(cmd: string, args: string[]): Promise<number> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: 'ignore' });
    child.once('error', rej);
    child.once('exit', () => res(performance.now() - t0));
  });
}

async function dropCaches(): Promise<void> {
  await timed('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '3\n');
}

await buildCli('dadi-cli-start');
const builds: Record<string, string> = {
  [values.baseline ? 'this tree' : 'built']: join(REPO_ROOT, 'node_modules/.cache/dadi-cli-start/bin/dadi'),
};
if (values.baseline) builds.baseline = join(resolve(values.baseline), 'bin/dadi');

const scratch = await mkdtemp(join(tmpdir(), 'dadi-cli-start-'));
const commands: Record<string, string[]> = {
  'dadi ps (client bundle)': ['ps', '--json', '--state', join(scratch, 'state')],
  'dadi pull, no snapshotter (pull bundle)': [
    'pull',
    '--containerd-address',
    join(scratch, 'containerd.sock'),
    '--snapshotter-address',
    join(scratch, 'snapshotter.sock'),
    '127.0.0.1:1/none:latest',
  ],
};
const samples = new Map<string, number[]>();
try {
  for (let i = 0; i < runs; i++) {
    for (const [command, args] of Object.entries(commands)) {
      for (const [build, bin] of Object.entries(builds)) {
        if (values.cold) await dropCaches();
        const key = `${command}\0${build}`;
        samples.set(key, [...(samples.get(key) ?? []), await timed(bin, args)]);
      }
    }
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}

const rows: BenchRow[] = Object.keys(commands).map((command) => {
  const [mine, base] = Object.keys(builds).map((b) => samples.get(`${command}\0${b}`)!);
  return {
    case: `${command}, spawn to exit${values.cold ? ', page cache dropped' : ''}, median of ${runs}`,
    unit: 'ms',
    value: median(mine!),
    ...(base ? { baseline: median(base), baselineName: `build at ${values.baseline}` } : {}),
    extra: { min: Math.min(...mine!), max: Math.max(...mine!), ...(base ? { baselineMin: Math.min(...base) } : {}) },
  };
});
report('cli-start', 'dadi CLI start: spawn to exit of a quick client command', rows);
