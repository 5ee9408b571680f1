import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Link, Network, type Nic, type Transfer } from './network.js';
import { Simulation } from './simulation.js';

const MB = 1e6;

function setup(latency = 0) {
  const sim = new Simulation();
  return { sim, net: new Network(sim, { latency }) };
}

describe('Network', () => {
  it('one transfer takes bytes ÷ the slower link + one latency', () => {
    const { sim, net } = setup(0.001);
    const a = net.nic('a', { up: 100 * MB });
    const b = net.nic('b', { up: 100 * MB, down: 50 * MB });
    let at = -1;
    net.send(a, b, 10 * MB, { onDone: () => (at = sim.now) });
    sim.run();
    expect(at).toBeCloseTo(0.2 + 0.001, 9);
    expect(a.up.bytes).toBe(10 * MB);
    expect(b.down.bytes).toBe(10 * MB);
  });

  it('concurrent transfers share a link, and the survivor speeds up when one ends', () => {
    const { sim, net } = setup();
    const src = net.nic('src', { up: 100 * MB });
    const x = net.nic('x', { up: 1000 * MB });
    const y = net.nic('y', { up: 1000 * MB });
    const done: Record<string, number> = {};
    net.send(src, x, 10 * MB, { onDone: () => (done.x = sim.now) });
    sim.at(0.05, () => net.send(src, y, 10 * MB, { onDone: () => (done.y = sim.now) }));
    sim.run();
    // x: 5 MB alone in 0.05 s, then 50 MB/s each: x's last 5 MB take 0.1 s; y then has 5 MB left alone.
    expect(done.x).toBeCloseTo(0.15, 9);
    expect(done.y).toBeCloseTo(0.2, 9);
  });

  it('transfers between the same two NICs share equally and end in size order', () => {
    const { sim, net } = setup();
    const a = net.nic('a', { up: 100 * MB });
    const b = net.nic('b', { up: 100 * MB });
    const done: number[] = [];
    net.send(a, b, 3 * MB, { onDone: () => done.push(sim.now) });
    net.send(a, b, MB, { onDone: () => done.push(sim.now) });
    sim.run();
    // 50 MB/s each until the small one ends at 0.02 s; the big one's last 2 MB then take 0.02 s.
    expect(done[0]).toBeCloseTo(0.02, 9);
    expect(done[1]).toBeCloseTo(0.04, 9);
    expect(a.up.bytes).toBe(4 * MB);
  });

  it('gives a flow held back elsewhere only what it can use (max-min, not equal split)', () => {
    const { net } = setup();
    const src = net.nic('src', { up: 100 * MB });
    const fast = net.nic('fast', { up: 1000 * MB });
    const slow = net.nic('slow', { up: 1000 * MB, down: 10 * MB });
    const a = net.send(src, fast, MB, { onDone: () => {} });
    const b = net.send(src, slow, MB, { onDone: () => {} });
    expect(b.rate).toBeCloseTo(10 * MB, 6);
    expect(a.rate).toBeCloseTo(90 * MB, 6);
  });

  it('a failed NIC fails its transfers, keeps the bytes sent so far counted and refuses new ones', () => {
    const { sim, net } = setup();
    const a = net.nic('a', { up: 100 * MB });
    const b = net.nic('b', { up: 100 * MB });
    const events: string[] = [];
    net.send(a, b, 100 * MB, { onDone: () => events.push('done'), onFail: () => events.push(`fail@${sim.now}`) });
    sim.at(0.25, () => net.fail(a));
    sim.run();
    expect(events).toEqual(['fail@0.25']);
    expect(a.up.bytes).toBeCloseTo(25 * MB, 3);
    net.send(b, a, MB, { onDone: () => events.push('done'), onFail: () => events.push('refused') });
    sim.run();
    expect(events).toEqual(['fail@0.25', 'refused']);
  });

  it('allocations are feasible and max-min fair on random topologies', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 16, maxLength: 16 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 30 }),
        (n, caps, pairs) => {
          const { net } = setup();
          const nics: Nic[] = [];
          for (let i = 0; i < n; i++)
            nics.push(net.nic(`n${i}`, { up: caps[2 * i]! * MB, down: caps[2 * i + 1]! * MB }));
          const transfers: Transfer[] = [];
          for (const [s, d] of pairs) {
            const from = nics[s % n]!;
            const to = nics[(s + 1 + (d % (n - 1))) % n]!;
            transfers.push(net.send(from, to, MB, { onDone: () => {} }));
          }
          const links: Link[] = nics.flatMap((x) => [x.up, x.down]);
          for (const l of links) {
            const used = net.rates(l).reduce((a, b) => a + b, 0);
            expect(used).toBeLessThanOrEqual(l.capacity * (1 + 1e-9));
          }
          // Max-min: every flow crosses a saturated link on which no flow gets more than it does.
          for (const t of transfers) {
            const path = [t.from.up, t.to.down];
            const bottleneck = path.some((l) => {
              const rates = net.rates(l);
              const used = rates.reduce((a, b) => a + b, 0);
              return used >= l.capacity * (1 - 1e-9) && Math.max(...rates) <= t.rate * (1 + 1e-9);
            });
            expect(bottleneck).toBe(true);
          }
        },
      ),
    );
  });
});
