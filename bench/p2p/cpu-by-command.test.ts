import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cpuByCommand, cpuSnapshot, parseStat } from './cpu-by-command.js';

describe('parseStat', () => {
  it('reads the times of a command whose name has spaces and parentheses', () => {
    const stat = '4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 1 0 777 0 0';
    expect(parseStat(stat)).toEqual({ key: '4242@777', cpu: { comm: 'my (odd) cmd', own: 3, children: 0.5 } });
  });

  it('refuses a truncated line', () => {
    expect(parseStat('12 (x) S 1 2')).toBeUndefined();
  });
});

describe('cpuByCommand', () => {
  it('charges a reaped child to its parent and folds kernel worker names', () => {
    const before = new Map([
      ['1@5', { comm: 'node', own: 1, children: 0 }],
      ['2@6', { comm: 'kworker/0:1', own: 0.5, children: 0 }],
    ]);
    const after = new Map([
      ['1@5', { comm: 'node', own: 1.25, children: 2 }],
      ['2@6', { comm: 'kworker/0:1', own: 0.75, children: 0 }],
      ['3@9', { comm: 'kworker/1:0', own: 0.5, children: 0 }],
    ]);
    expect(cpuByCommand(before, after)).toEqual([
      { command: 'node children', cpuS: 2 },
      { command: 'kworker', cpuS: 0.75 },
      { command: 'node', cpuS: 0.25 },
    ]);
  });

  it('sees the CPU a finished child process burned under this process', async () => {
    const before = await cpuSnapshot();
    // About 0.3 s of CPU in a child that ends before the second reading.
    spawnSync('sh', ['-c', 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done']);
    const rows = cpuByCommand(before, await cpuSnapshot(), 50);
    const self = parseStat(readFileSync('/proc/self/stat', 'utf8'));
    const mine = rows.find((r) => r.command === `${self?.cpu.comm} children`);
    expect(mine?.cpuS ?? 0).toBeGreaterThan(0.05);
  });
});
