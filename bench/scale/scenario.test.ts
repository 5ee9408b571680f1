import { describe, expect, it } from 'vitest';
import { TEST_SEED } from '../../test/seed.js';
import { DEFAULT_SCENARIO, quantile, runScenario, type ScenarioConfig } from './scenario.js';
import { loadStartReads, planStart } from './workload.js';

const plan = planStart(loadStartReads('python'), DEFAULT_SCENARIO.chunkSize);
const small: ScenarioConfig = {
  ...DEFAULT_SCENARIO,
  hosts: 30,
  containersPerHost: 2,
  warmStartS: 1,
  deadlineMs: 1000,
  seed: TEST_SEED,
};

describe('runScenario (the real src/p2p logic in simulated time)', () => {
  it('one host alone starts after the warm time plus what its fetches add', () => {
    const r = runScenario({ ...small, hosts: 1 }, plan);
    expect(r.started).toBe(2);
    expect(r.all_started_s).toBeGreaterThan(1);
    // 35 MiB through a 1 Gbit/s registry link take 0.28 s; the start overlaps them with its compute.
    expect(r.all_started_s).toBeLessThan(1 + (plan.neededBytes * 8) / 1e9 + 0.2);
    expect(r.registry_bytes).toBe(plan.neededBytes);
  });

  it('through the trees every container starts and the registry sends one copy', () => {
    const r = runScenario(small, plan);
    expect(r.started).toBe(60);
    expect(r.registry_bytes).toBe(plan.neededBytes);
    expect(r.registry_fallbacks).toBe(0);
    // Hosts serve each other: the root uploads at most one copy to each of its children per blob.
    expect(r.root_upload_bytes).toBeLessThanOrEqual(plan.neededBytes * DEFAULT_SCENARIO.rootFanout);
    expect(r.host_upload_max_bytes).toBeGreaterThan(0);
  });

  it('parents push chunks to later children that do not prefetch (pull-push), and not when push is off', () => {
    const spread = { ...small, prefetchWorkers: 0, startSpreadS: 0.5 };
    const on = runScenario(spread, plan);
    const off = runScenario({ ...spread, push: false }, plan);
    expect(on.pushed_chunks).toBeGreaterThan(0);
    expect(off.pushed_chunks).toBe(0);
    expect(on.started).toBe(60);
    expect(off.started).toBe(60);
    // A pushed chunk is one a child did not have to ask for.
    expect(on.host_requests).toBeLessThan(off.host_requests);
  });

  it('hosts dying mid-transfer are routed around: every survivor starts, the registry still sends about one copy', () => {
    const clean = runScenario(small, plan);
    expect(clean.arrival_median_s).toBeGreaterThan(0);
    const r = runScenario({ ...small, failFraction: 0.2, failAtS: clean.arrival_median_s }, plan);
    expect(r.dead_hosts).toBe(6);
    expect(r.containers).toBe(48);
    expect(r.started).toBe(48);
    expect(r.failed_requests).toBeGreaterThan(0);
    expect(r.reparents).toBeGreaterThan(0);
    expect(r.registry_bytes).toBe(plan.neededBytes);
  });

  it('hosts sharing a few cores start later than hosts with their own, by about the CPU they share', () => {
    const cpu = { ...small, containersPerHost: 1, prefetchWorkers: 0, hostChunkS: 0.01 };
    const own = runScenario(cpu, plan);
    const shared = runScenario({ ...cpu, sharedCores: 2 }, plan);
    expect(shared.started).toBe(30);
    // 30 hosts × (1 s of start + 35 chunks × 10 ms) of CPU on 2 cores: at least 20 s.
    const work = 30 * (cpu.warmStartS + (plan.neededBytes / cpu.chunkSize) * cpu.hostChunkS);
    expect(shared.all_started_s).toBeGreaterThanOrEqual(work / 2);
    expect(shared.all_started_s).toBeLessThan(work / 2 + 2);
    expect(own.all_started_s).toBeLessThan(3);
  });

  it('a dead parent is noticed by the deadline only: a longer fixed deadline delays its children', () => {
    const clean = runScenario(small, plan);
    const at = { ...small, failFraction: 0.2, failAtS: clean.arrival_median_s, adaptiveDeadline: false };
    const short = runScenario({ ...at, deadlineMs: 500 }, plan);
    const long = runScenario({ ...at, deadlineMs: 4000 }, plan);
    expect(short.started).toBe(48);
    expect(long.started).toBe(48);
    expect(long.all_started_s).toBeGreaterThan(clean.arrival_median_s + 4);
    expect(short.all_started_s).toBeLessThan(long.all_started_s);
  });

  it("the agent's deadline (measured rate for peers, 1 s floor) notices a dead parent long before its 10 s cap", () => {
    const clean = runScenario(small, plan);
    const at = { ...small, failFraction: 0.2, failAtS: clean.arrival_median_s, deadlineMs: 10_000 };
    const adaptive = runScenario({ ...at, adaptiveDeadline: true, deadlineFloorMs: 1000 }, plan);
    const fixed = runScenario({ ...at, adaptiveDeadline: false }, plan);
    expect(adaptive.started).toBe(48);
    expect(fixed.started).toBe(48);
    expect(fixed.all_started_s).toBeGreaterThan(clean.arrival_median_s + 10);
    expect(adaptive.all_started_s).toBeLessThan(clean.arrival_median_s + 10);
    expect(adaptive.registry_bytes).toBe(plan.neededBytes);
  });

  it('is reproducible: the same seed gives the same run', () => {
    const a = runScenario({ ...small, failFraction: 0.1, failAtS: 0.3 }, plan);
    const b = runScenario({ ...small, failFraction: 0.1, failAtS: 0.3 }, plan);
    expect({ ...a, wall_s: 0 }).toEqual({ ...b, wall_s: 0 });
  });

  it('quantile takes the nearest rank', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.99)).toBe(4);
    expect(quantile([1, 2, 3, 4], 1)).toBe(4);
  });
});
