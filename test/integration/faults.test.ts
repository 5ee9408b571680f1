// Fault injection: ≥ 1,000 random ranged reads through a proxy that resets connections, answers
// 500/503/429, truncates or shortens bodies, stalls, corrupts bytes and drops Range headers.
// Every read must return the right bytes or fail with a DadiError within its deadline: 0 wrong
// bytes. Corrupted bytes are invisible to HTTP, so the blob carries a CRC per 4 KiB block (as ZFile
// does) and RemoteBlob's `verify` hook rejects bad blocks and re-fetches.

import { crc32c } from '@node-rs/crc32';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DadiError } from '../../src/errors.js';
import { sha256Of } from '../../src/oci/index.js';
import { RegistryClient, RemoteBlob, type RepoRef } from '../../src/registry/index.js';
import { testRandom } from '../seed.js';
import { ALL_FAULTS, type FaultProxy, startFaultProxy } from './fault-proxy.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';

const HAVE = haveRegistry('fault-injection tests');
const BLOCK = 4096;
const BLOCKS = 2048; // 8 MiB

/** 4 KiB blocks: 4092 pseudo-random bytes + their CRC32C (LE). */
function makeBlob(): Buffer {
  const b = Buffer.alloc(BLOCK * BLOCKS);
  let x = 12345;
  for (let i = 0; i < BLOCKS; i++) {
    const base = i * BLOCK;
    for (let j = 0; j < BLOCK - 4; j += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b.writeUInt32LE(x >>> 0, base + j);
    }
    b.writeUInt32LE(crc32c(b.subarray(base, base + BLOCK - 4)), base + BLOCK - 4);
  }
  return b;
}

/** The upper layer's integrity check: every whole block in the read has a matching CRC. */
function blocksOk(_offset: number, data: Uint8Array): boolean {
  for (let p = 0; p + BLOCK <= data.length; p += BLOCK) {
    const crc = Buffer.from(data.buffer, data.byteOffset + p + BLOCK - 4, 4).readUInt32LE(0);
    if (crc32c(data.subarray(p, p + BLOCK - 4)) !== crc) return false;
  }
  return true;
}

describe.skipIf(!HAVE)('fault injection', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  const blob = makeBlob();
  const digest = sha256Of(blob);
  let repo: RepoRef;

  beforeAll(async () => {
    reg = await startRegistry({ auth: 'htpasswd' });
    const direct = new RegistryClient({ credentials: reg.credentials });
    try {
      await direct.pushBlob({ registry: reg.host, repository: 'faults/blob' }, blob);
    } finally {
      await direct.close();
    }
    proxy = await startFaultProxy({
      target: reg.url,
      stallMs: 5000,
      seed: 42,
      faults: {
        reset: 0.03,
        http500: 0.02,
        http503: 0.02,
        http429: 0.02,
        truncate: 0.03,
        short: 0.03,
        stall: 0.01,
        'stall-body': 0.01,
        corrupt: 0.04,
        'ignore-range': 0.02,
      },
    });
    repo = { registry: proxy.host, repository: 'faults/blob' };
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  it('1,000+ random reads: right bytes or a clear DadiError within the deadline, never wrong bytes', async () => {
    const deadlineMs = 4000;
    const c = new RegistryClient({
      credentials: reg.credentials,
      requestTimeoutMs: 250,
      maxAttempts: 10,
      backoffBaseMs: 5,
      backoffMaxMs: 50,
      connections: 8,
    });
    try {
      const rb = await RemoteBlob.open(c, repo, digest, {
        size: blob.length,
        maxRangeBytes: 64 << 10,
        parallel: 4,
        verify: blocksOk,
        verifyTries: 6,
        readDeadlineMs: deadlineMs,
      });
      let ok = 0;
      let wrong = 0;
      let slowest = 0;
      const failures: DadiError[] = [];
      const others: unknown[] = [];
      const READS = 1000;
      const random = testRandom();
      let next = 0;
      const lane = async () => {
        while (next < READS) {
          next++;
          const first = Math.floor(random() * BLOCKS);
          const count = 1 + Math.floor(random() * Math.min(24, BLOCKS - first));
          const buf = Buffer.alloc(count * BLOCK);
          const t0 = Date.now();
          try {
            const n = await rb.read(buf, first * BLOCK);
            if (n !== buf.length || !buf.equals(blob.subarray(first * BLOCK, first * BLOCK + buf.length))) wrong++;
            else ok++;
          } catch (e) {
            if (e instanceof DadiError) failures.push(e);
            else others.push(e);
          }
          slowest = Math.max(slowest, Date.now() - t0);
        }
      };
      await Promise.all(Array.from({ length: 8 }, lane));
      const summary = {
        ok,
        wrong,
        failures: failures.length,
        slowest,
        proxy: proxy.counts,
        client: c.stats,
        blob: rb.stats,
      };
      console.log('fault injection:', JSON.stringify(summary));
      expect(wrong).toBe(0);
      expect(others).toEqual([]);
      expect(ok + failures.length).toBe(READS);
      for (const f of failures) {
        expect(['EIO', 'ETIMEDOUT', 'ECORRUPT']).toContain(f.code);
        expect(f.message).toContain('faults/blob');
      }
      expect(ok).toBeGreaterThan(READS * 0.95);
      expect(slowest).toBeLessThan(deadlineMs + 1500);
      for (const f of ALL_FAULTS) expect(proxy.counts[f] ?? 0, `fault ${f} injected`).toBeGreaterThan(0);
      expect(rb.stats.verifyFailures).toBeGreaterThan(0); // corruption was caught by the hook
      expect(c.stats.retries).toBeGreaterThan(0);
      expect(c.stats.fullBodyFallbacks).toBeGreaterThan(0);
    } finally {
      await c.close();
    }
  });

  it('uploads through faults on every method: stored intact or a clear error', async () => {
    const upProxy = await startFaultProxy({
      target: reg.url,
      stallMs: 5000,
      seed: 7,
      eligible: (req) => req.url !== '/v2/',
      faults: { reset: 0.04, http500: 0.03, http503: 0.03, http429: 0.02, truncate: 0.03, stall: 0.01 },
    });
    const c = new RegistryClient({
      credentials: reg.credentials,
      requestTimeoutMs: 500,
      maxAttempts: 8,
      backoffBaseMs: 5,
      backoffMaxMs: 50,
    });
    const direct = new RegistryClient({ credentials: reg.credentials });
    try {
      let stored = 0;
      for (let i = 0; i < 10; i++) {
        const data = blob.subarray(i * 100_000, i * 100_000 + 1_000_000 + i);
        try {
          const r = await c.pushBlob({ registry: upProxy.host, repository: 'faults/up' }, data, {
            chunkBytes: 256 << 10,
          });
          expect(r.digest).toBe(sha256Of(data));
          stored++;
        } catch (e) {
          expect(e).toBeInstanceOf(DadiError);
          continue;
        }
        expect(
          (await direct.fetchBlob({ registry: reg.host, repository: 'faults/up' }, sha256Of(data))).equals(data),
        ).toBe(true);
      }
      console.log('uploads through faults:', stored, 'of 10 stored', JSON.stringify(upProxy.counts));
      expect(stored).toBeGreaterThanOrEqual(8);
    } finally {
      await c.close();
      await direct.close();
      await upProxy.stop();
    }
  });

  it('whole-blob fetches and streams through faults: digest-verified or an error, mostly verified', async () => {
    const c = new RegistryClient({
      credentials: reg.credentials,
      requestTimeoutMs: 250,
      maxAttempts: 10,
      backoffBaseMs: 5,
      backoffMaxMs: 50,
    });
    const faultsBefore = injectedFaults(proxy);
    // The dice alone may spare a handful of requests; these make sure the fetches meet faults that
    // retries must carry them through, whatever the earlier tests left the dice at.
    proxy.forceNext('reset', 'http503', 'truncate');
    const ATTEMPTS = 6;
    let ok = 0;
    const failures: DadiError[] = [];
    try {
      for (let i = 0; i < ATTEMPTS; i++) {
        let got: Buffer;
        try {
          if (i % 2 === 0) got = await c.fetchBlob(repo, digest);
          else {
            const chunks: Buffer[] = [];
            for await (const ch of c.blobStream(repo, digest)) chunks.push(ch);
            got = Buffer.concat(chunks);
          }
        } catch (e) {
          if (!(e instanceof DadiError)) throw e;
          failures.push(e);
          continue;
        }
        expect(got.equals(blob), `attempt ${i} returned wrong bytes`).toBe(true);
        ok++;
      }
    } finally {
      await c.close();
    }
    console.log(
      'whole-blob fetches through faults:',
      ok,
      'of',
      ATTEMPTS,
      failures.map((f) => f.message),
    );
    for (const f of failures) expect(['EIO', 'ETIMEDOUT', 'ECORRUPT']).toContain(f.code);
    // Retries must carry most whole-blob fetches through, and the proxy must really have interfered.
    expect(ok).toBeGreaterThanOrEqual(ATTEMPTS - 1);
    expect(injectedFaults(proxy)).toBeGreaterThan(faultsBefore);
  });
});

/** How many faults the proxy has injected so far (every count but plain passes). */
function injectedFaults(p: FaultProxy): number {
  return Object.entries(p.counts).reduce((sum, [k, n]) => (k === 'ok' ? sum : sum + n), 0);
}
