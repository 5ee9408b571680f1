import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from './event-queue.js';
import { Simulation } from './simulation.js';

describe('EventQueue', () => {
  it('pops every event not cancelled, in (time, insertion) order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ time: fc.integer({ min: 0, max: 20 }), cancel: fc.boolean() }), { maxLength: 200 }),
        (specs) => {
          const q = new EventQueue();
          const events = specs.map((s) => q.push(s.time, () => {}));
          specs.forEach((s, i) => {
            if (s.cancel) events[i]!.cancelled = true;
          });
          const popped = [];
          for (let e = q.pop(); e !== undefined; e = q.pop()) popped.push(e);
          const want = events
            .filter((e) => !e.cancelled)
            .sort((a, b) => a.time - b.time || a.seq - b.seq)
            .map((e) => e.seq);
          expect(popped.map((e) => e.seq)).toEqual(want);
        },
      ),
    );
  });
});

describe('Simulation', () => {
  it('runs callbacks at their simulated times, ties in scheduling order, skipping cancelled ones', () => {
    const sim = new Simulation();
    const seen: string[] = [];
    sim.after(2, () => seen.push(`b@${sim.now}`));
    sim.after(1, () => {
      seen.push(`a@${sim.now}`);
      sim.after(1, () => seen.push(`c@${sim.now}`));
    });
    sim.after(1.5, () => seen.push('cancelled')).cancel();
    expect(sim.run()).toBe(2);
    expect(seen).toEqual(['a@1', 'b@2', 'c@2']);
  });

  it('stops at `until` and continues from there', () => {
    const sim = new Simulation();
    const seen: number[] = [];
    for (const t of [1, 2, 3]) sim.at(t, () => seen.push(t));
    expect(sim.run({ until: 2.5 })).toBe(2.5);
    expect(seen).toEqual([1, 2]);
    sim.run();
    expect(seen).toEqual([1, 2, 3]);
  });

  it('refuses events in the past and ends a runaway model with an error', () => {
    const sim = new Simulation();
    sim.at(1, () => {});
    sim.run();
    expect(() => sim.at(0.5, () => {})).toThrow(/before now/);
    const tick = () => sim.after(0.001, tick);
    tick();
    expect(() => sim.run({ maxEvents: 1000 })).toThrow(/more than 1000 events/);
  });
});
