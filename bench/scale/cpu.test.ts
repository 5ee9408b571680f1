import { describe, expect, it } from 'vitest';
import { ownCores, sharedCores } from './cpu.js';
import { Simulation } from './simulation.js';

/** Run `jobs` ([kind, host, seconds]) from time 0; the time each finished, in job order. */
function finish(make: (sim: Simulation) => ReturnType<typeof ownCores>, jobs: [string, string, number][]): number[] {
  const sim = new Simulation();
  const cpu = make(sim);
  const at: number[] = [];
  jobs.forEach(([kind, host, s], i) => {
    const done = () => {
      at[i] = sim.now;
    };
    if (kind === 'daemon') cpu.daemon(host, s, done);
    else cpu.container(host, s, done);
  });
  sim.run({ maxEvents: 10_000 });
  return at;
}

describe('ownCores (a datacenter host)', () => {
  it("queues one host's daemon work on one core, and never slows another host or a container", () => {
    const at = finish(ownCores, [
      ['daemon', 'a', 1],
      ['daemon', 'a', 1],
      ['daemon', 'b', 1],
      ['container', 'a', 0.5],
    ]);
    expect(at).toEqual([1, 2, 1, 0.5]);
  });
});

describe('sharedCores (the validation machine)', () => {
  it('shares the cores fairly: four daemons on two cores each run at half a core', () => {
    const at = finish(
      (sim) => sharedCores(sim, 2),
      [
        ['daemon', 'a', 1],
        ['daemon', 'b', 1],
        ['daemon', 'c', 1],
        ['daemon', 'd', 1],
      ],
    );
    for (const t of at) expect(t).toBeCloseTo(2, 9);
  });

  it('caps a daemon at one core even when cores are idle, and lets a container use another', () => {
    const at = finish(
      (sim) => sharedCores(sim, 4),
      [
        ['daemon', 'a', 1],
        ['daemon', 'a', 1],
        ['container', 'a', 1],
      ],
    );
    // The daemon's two jobs share its one core; the container runs beside them.
    expect(at[0]).toBeCloseTo(2, 9);
    expect(at[1]).toBeCloseTo(2, 9);
    expect(at[2]).toBeCloseTo(1, 9);
  });

  it('gives the freed share to the rest when a job ends (max-min)', () => {
    const at = finish(
      (sim) => sharedCores(sim, 1),
      [
        ['daemon', 'a', 0.5],
        ['daemon', 'b', 1],
      ],
    );
    // Both at half a core until a is done at 1 s (0.5 s of work each), then b alone: 0.5 s more.
    expect(at[0]).toBeCloseTo(1, 9);
    expect(at[1]).toBeCloseTo(1.5, 9);
  });
});
