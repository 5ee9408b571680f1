import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { testRandom } from '../../test/seed.js';
import { LayerPull, type PullableBlob } from './layer-pull.js';
import { DEFAULT_LAYER_PULL, type LayerPullConfig, RateLimiter } from './layer-pull-plan.js';

/** A blob in memory with a byte-exact "cached" map; prefetch copies from `origin` (possibly corrupted). */
class FakeBlob implements PullableBlob {
  readonly name = 'fake blob';
  readonly cached: Uint8Array;
  readonly data: Uint8Array;
  prefetched: Array<{ at: number; offset: number; length: number }> = [];
  foreground = 0;
  constructor(
    readonly origin: Uint8Array,
    private readonly clock: { t: number },
  ) {
    this.cached = new Uint8Array(origin.length);
    this.data = new Uint8Array(origin.length);
  }
  get size() {
    return this.origin.length;
  }
  async holds(offset: number, length: number) {
    return this.cached.subarray(offset, offset + length).every((b) => b === 1);
  }
  async prefetch(offset: number, length: number) {
    this.prefetched.push({ at: this.clock.t, offset, length });
    this.data.set(this.origin.subarray(offset, offset + length), offset);
    this.cached.fill(1, offset, offset + length);
  }
  async read(buf: Uint8Array, offset: number) {
    const n = Math.min(buf.length, this.size - offset);
    buf.set(this.data.subarray(offset, offset + n));
    return n;
  }
  async evict(offset: number, length: number) {
    this.cached.fill(0, offset, offset + length);
  }
  foregroundInflight() {
    return this.foreground;
  }
}

const digestOf = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function randomBytes(n: number, stream: number): Uint8Array {
  const r = testRandom(stream);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

/** A fake clock: sleeping advances it (and yields to let other workers run). */
function fakeTime() {
  const clock = { t: 0 };
  const sleep = async (ms: number, signal: AbortSignal) => {
    if (signal.aborted) throw signal.reason;
    clock.t += ms;
    await Promise.resolve();
  };
  return { clock, now: () => clock.t, sleep };
}

const cfg = (o: Partial<LayerPullConfig> = {}): LayerPullConfig => ({
  ...DEFAULT_LAYER_PULL,
  delay: 0,
  delayExtra: 0,
  chunkSize: 4096,
  concurrency: 1,
  ...o,
});

describe('LayerPull', () => {
  it('fetches only the missing chunks, verifies, and reports the layer verified', async () => {
    const { clock, now, sleep } = fakeTime();
    const origin = randomBytes(10 * 4096 + 100, 1);
    const blob = new FakeBlob(origin, clock);
    await blob.prefetch(4096, 4096); // chunk 1 already cached (a foreground read)
    await blob.prefetch(8 * 4096, 4096);
    blob.prefetched = [];
    const logs: string[] = [];
    const pull = new LayerPull([{ name: 'r/x@d', digest: digestOf(origin), blob }], cfg({ concurrency: 3 }), {
      now,
      sleep,
      log: (m) => logs.push(m),
    });
    const [s] = await pull.done;
    expect(s).toMatchObject({ state: 'verified', chunksFetched: 9, chunksSkipped: 2, passes: 1 });
    expect(blob.prefetched.map((p) => p.offset).sort((a, b) => a - b)).toEqual(
      [0, 2, 3, 4, 5, 6, 7, 9, 10].map((i) => i * 4096),
    );
    expect(Buffer.from(blob.data).equals(Buffer.from(origin))).toBe(true);
    expect(logs.join('\n')).toMatch(/r\/x@d complete and verified/);
  });

  it('keeps bytes over injected time under the rate (plus one chunk)', async () => {
    const { clock, now, sleep } = fakeTime();
    const origin = randomBytes(64 * 4096, 2);
    const blob = new FakeBlob(origin, clock);
    const config = cfg({ maxMBps: 0.1, concurrency: 4 }); // 100 kB/s
    const pull = new LayerPull([{ name: 'r', digest: digestOf(origin), blob }], config, { now, sleep });
    expect((await pull.done)[0]!.state).toBe('verified');
    let bytes = 0;
    for (const p of blob.prefetched) {
      bytes += p.length;
      expect(bytes).toBeLessThanOrEqual(0.1e6 * (p.at / 1000) + 4096 + 1e-6);
    }
    // And it did not crawl either: the whole blob took about size / rate.
    expect(clock.t).toBeGreaterThanOrEqual(((origin.length - 4096) / 0.1e6) * 1000);
    expect(clock.t).toBeLessThanOrEqual((origin.length / 0.1e6) * 1000 + 50);
  });

  it('a digest mismatch drops the cached bytes, retries up to tries passes, then fails with the reason', async () => {
    const { clock, now, sleep } = fakeTime();
    const origin = randomBytes(5 * 4096, 3);
    const good = digestOf(origin);
    origin[3 * 4096 + 7]! ^= 0xff; // what the registry serves is not what the digest names
    const blob = new FakeBlob(origin, clock);
    const logs: string[] = [];
    const pull = new LayerPull([{ name: 'reg/repo@sha', digest: good, blob }], cfg({ tries: 2 }), {
      now,
      sleep,
      log: (m) => logs.push(m),
    });
    const [s] = await pull.done;
    expect(s).toMatchObject({ state: 'failed', passes: 2, chunksFetched: 10 });
    expect(s!.error).toMatch(/reg\/repo@sha: the pulled blob hashes to sha256:[0-9a-f]{64}, not its digest/);
    expect(logs.filter((l) => /pass \d of 2 failed/.test(l))).toHaveLength(2);
    expect(await blob.holds(0, blob.size)).toBe(false);
    expect(blob.cached.some((b) => b === 1)).toBe(false);
  });

  it('waits while the foreground has fetches in flight, and stop() ends it without marking the layer', async () => {
    const { clock, now, sleep } = fakeTime();
    const origin = randomBytes(8 * 4096, 4);
    const blob = new FakeBlob(origin, clock);
    blob.foreground = 1;
    let polls = 0;
    const pull = new LayerPull([{ name: 'r', digest: digestOf(origin), blob }], cfg(), {
      now,
      sleep: async (ms, signal) => {
        if (++polls === 20) blob.foreground = 0;
        await sleep(ms, signal);
      },
    });
    const s = await pull.done;
    expect(polls).toBeGreaterThanOrEqual(20);
    expect(blob.prefetched[0]!.at).toBeGreaterThan(0); // nothing went out while the foreground was busy
    expect(s[0]!.state).toBe('verified');

    const other = new FakeBlob(origin, clock);
    other.foreground = 1; // never idle: the pull can only wait
    const stuck = new LayerPull([{ name: 'r', digest: digestOf(origin), blob: other }], cfg(), {
      now,
      sleep: (ms, signal) =>
        new Promise((res, rej) => {
          if (signal.aborted) return rej(signal.reason);
          signal.addEventListener('abort', () => rej(signal.reason), { once: true });
          setTimeout(res, ms);
        }),
    });
    await new Promise((r) => setTimeout(r, 30));
    const st = await stuck.stop();
    expect(st[0]!.state).toBe('stopped');
    expect(other.prefetched).toEqual([]);
  });

  it('a shared limiter keeps two pulls together under the rate', async () => {
    const { clock, now, sleep } = fakeTime();
    const a = new FakeBlob(randomBytes(16 * 4096, 5), clock);
    const b = new FakeBlob(randomBytes(16 * 4096, 6), clock);
    const limiter = new RateLimiter(0.2e6, now);
    const config = cfg({ maxMBps: 0.2 });
    const pa = new LayerPull([{ name: 'a', digest: digestOf(a.origin), blob: a }], config, { now, sleep, limiter });
    const pb = new LayerPull([{ name: 'b', digest: digestOf(b.origin), blob: b }], config, { now, sleep, limiter });
    await Promise.all([pa.done, pb.done]);
    const all = [...a.prefetched, ...b.prefetched].sort((x, y) => x.at - y.at);
    let bytes = 0;
    for (const p of all) {
      bytes += p.length;
      expect(bytes).toBeLessThanOrEqual(0.2e6 * (p.at / 1000) + 4096 + 1e-6);
    }
  });
});
