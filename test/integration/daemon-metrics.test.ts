// Issue #15 metrics acceptance: a daemon started with `--metrics-address`, a cold `dadi run` of an
// image served through the cold-start benchmark's counting proxy (bench/coldstart/delay-proxy.ts,
// no added latency), /metrics scraped all along. Once the daemon is idle, the scraped registry
// byte counter equals the bytes the proxy saw the registry send, and `dadi status --json` reports
// the same figures. `mount --wait-prefetch` follows a background layer pull to its end, which
// status and /metrics show. Nothing of ours may remain afterwards.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy } from '../../bench/coldstart/delay-proxy.js';
import { checkJsonOutput } from '../../src/cli/json-output.js';
import type { DaemonStatus } from '../../src/runtime/status.js';
import { runDadi } from '../cli.js';
import { missing, requireOrSkip } from '../require.js';
import { freePort, haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { leftovers, pushRootfsImage, shutDownAndScrub } from './runtime-helpers.js';

const WHAT = 'daemon metrics';
const HAVE =
  haveRegistry(WHAT) &&
  requireOrSkip(WHAT, missing({ root: true, tools: ['runc', 'losetup'], hint: 'apt-get install runc mount' }));
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** `name{labels} value` lines of a Prometheus exposition (comments skipped). */
function parseExposition(text: string): Array<{ name: string; labels: string; value: number }> {
  const out: Array<{ name: string; labels: string; value: number }> = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.push({ name: m[1]!, labels: m[2] ?? '', value: Number(m[3]) });
  }
  return out;
}

function sample(text: string, name: string, labels = ''): number {
  const s = parseExposition(text).find((x) => x.name === name && x.labels === labels);
  if (!s) throw new Error(`no sample ${name}${labels} in:\n${text}`);
  return s.value;
}

describe.skipIf(!HAVE)('daemon metrics', () => {
  let root: string;
  let reg: TestRegistry;
  let proxy: ReturnType<typeof startProxy>;
  let ref: string;
  let pullRef: string;
  let state: string;
  let cacheDir: string;
  let daemon: ChildProcess | undefined;
  let daemonLog = '';
  let metricsUrl: string;
  const env = () => ({ DADI_STATE: state, DADI_CACHE_DIR: cacheDir });
  const dadi = (args: string[]) => runDadi(args, { env: env() });
  // Every status read also checks the output against its documented schema (docs/json-output.md).
  const status = async () => checkJsonOutput('status', (await dadi(['status', '--json'])).stdout) as DaemonStatus;
  const scrape = async () => {
    const res = await fetch(metricsUrl);
    expect(res.status).toBe(200);
    return res.text();
  };

  beforeAll(async () => {
    // State deep in a private folder (FUSE mount points must never sit directly under /tmp).
    root = await mkdtemp('/var/tmp/dadi-metrics-');
    state = join(root, 'state');
    cacheDir = join(root, 'cache');
    reg = await startRegistry({ auth: 'none' });
    const port = await freePort();
    proxy = startProxy(`127.0.0.1:${port}`, reg.host, 0);
    await proxy.listening;
    // Pushed straight to the registry; only the daemon's reads go through the proxy.
    const pushed = await pushRootfsImage(root, reg.host, 'dadi/metrics', { Cmd: ['/bin/cat', '/etc/os-release'] });
    ref = pushed.replace(reg.host, `127.0.0.1:${port}`);
    // A second image (its own layer) for the pull test: the run's layer may be pulled already.
    await mkdir(join(root, 'second'));
    const second = await pushRootfsImage(join(root, 'second'), reg.host, 'dadi/metrics-pull', { Cmd: ['/bin/true'] });
    pullRef = second.replace(reg.host, `127.0.0.1:${port}`);
    daemon = spawn(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'src/cli/entry.ts'), 'daemon', '--metrics-address', '127.0.0.1:0'],
      {
        cwd: repoRoot,
        // Background pulls on, at once: the pull test follows one.
        env: {
          ...process.env,
          ...env(),
          UV_THREADPOOL_SIZE: '64',
          DADI_PULL: 'true',
          DADI_PULL_DELAY: '0',
          DADI_PULL_DELAY_EXTRA: '0',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    daemon.stderr?.on('data', (d: Buffer) => (daemonLog += d.toString()));
    for (let i = 0; i < 200 && !/metrics on ([^\s"]+)/.test(daemonLog); i++)
      await new Promise((r) => setTimeout(r, 50));
    const m = /metrics on ([^\s"]+)/.exec(daemonLog);
    if (!m) throw new Error(`the daemon did not report its metrics address: ${daemonLog}`);
    metricsUrl = m[1]!;
  }, 120_000);

  afterAll(async () => {
    try {
      await shutDownAndScrub(state, [], daemon?.pid);
      expect(await leftovers(state, [])).toEqual([]);
    } finally {
      proxy?.close();
      await reg?.stop();
      if (root) await rm(root, { recursive: true, force: true });
    }
  });

  it('a cold start: the scraped registry bytes equal what the counting proxy saw; status agrees', async () => {
    const before = await scrape();
    expect(sample(before, 'dadi_devices', '{mode="ro"}')).toBe(0);
    // No registry read yet: the counter is 0, and the proxy saw nothing.
    expect(sample(before, 'dadi_registry_response_bytes_total')).toBe(0);
    expect(proxy.stats.responseBodyBytes).toBe(0);

    // Scrape all through the run: the counter only grows and never passes what the proxy carried.
    let running = true;
    const seen: number[] = [];
    const scraping = (async () => {
      for (let i = 0; running && i < 2000; i++) {
        const text = await scrape();
        const carried = proxy.stats.responseBodyBytes;
        const v = parseExposition(text).find((s) => s.name === 'dadi_registry_response_bytes_total')?.value;
        if (v !== undefined) {
          expect(v).toBeLessThanOrEqual(carried);
          seen.push(v);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const run = await dadi(['run', '--rm', ref]).finally(() => (running = false));
    await scraping;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('dadi test rootfs');
    expect(seen).toEqual([...seen].sort((a, b) => a - b));

    // Idle: no fetch in flight (readahead may finish after the container exits).
    let s = await status();
    for (let i = 0; i < 100 && s.cache && Object.values(s.cache.fetchesInFlight).some((n) => n > 0); i++) {
      await new Promise((r) => setTimeout(r, 50));
      s = await status();
    }
    const text = await scrape();
    const registryBytes = sample(text, 'dadi_registry_response_bytes_total');
    expect(registryBytes).toBeGreaterThan(0);
    expect(registryBytes).toBe(proxy.stats.responseBodyBytes);
    expect(sample(text, 'dadi_registry_requests_total')).toBe(proxy.stats.requests);

    // `dadi status --json`: the same figures (nothing read in between).
    s = await status();
    expect(s.registry?.responseBytes).toBe(registryBytes);
    expect(s.registry?.requests).toBe(proxy.stats.requests);
    const reg = s.fetches.find((f) => f.source === 'registry')!;
    expect(reg.count).toBe(s.registry?.rangeReads);
    expect(reg.bytes).toBe(s.registry?.rangeBytes);
    expect(sample(text, 'dadi_fetch_duration_seconds_count', '{source="registry"}')).toBe(reg.count);
    expect(sample(text, 'dadi_fetch_duration_seconds_bucket', '{le="+Inf",source="registry"}')).toBe(reg.count);
    expect(sample(text, 'dadi_fetch_bytes_total', '{source="registry"}')).toBe(reg.bytes);
    expect(sample(text, 'dadi_fetch_duration_seconds_count', '{source="peer"}')).toBe(0);
    // The cache served the run: its misses came from fetches, and the scrape shows the status's counts.
    expect(s.cache).not.toBeNull();
    expect(s.cache!.missBytes).toBeGreaterThan(0);
    expect(sample(text, 'dadi_cache_miss_bytes_total')).toBe(s.cache!.missBytes);
    expect(sample(text, 'dadi_cache_hit_bytes_total')).toBe(s.cache!.hitBytes);
    expect(sample(text, 'dadi_cache_usage_bytes')).toBe(s.cache!.usageBytes);
    // The run resolved, mounted and unmounted through the daemon; its container is gone (--rm).
    expect(sample(text, 'dadi_daemon_requests_total', '{op="resolve"}')).toBe(1);
    expect(sample(text, 'dadi_daemon_requests_total', '{op="mount"}')).toBe(1);
    expect(sample(text, 'dadi_devices', '{mode="rw"}')).toBe(0);
    expect(s.devices).toEqual([]);
    expect(s.errors).toEqual([]);

    const table = await dadi(['status']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(
      new RegExp(`registry +.* \\(${registryBytes} bytes\\) in ${s.registry?.requests} requests`),
    );
    expect(table.stdout).toMatch(new RegExp(`^metrics +${metricsUrl}$`, 'm'));
  });

  it('mount --wait-prefetch follows the background pull to its end; status and /metrics show it', async () => {
    const mnt = join(root, 'mnt');
    await mkdir(mnt);
    const m = await dadi(['mount', '--wait-prefetch', '--json', pullRef, mnt]);
    expect(m.code, m.stderr).toBe(0);
    const out = checkJsonOutput('mount', m.stdout) as {
      device: { id: string; target: string };
      prefetch: DaemonStatus['devices'][0];
    };
    try {
      expect(out.device.target).toBe(mnt);
      expect(out.prefetch.id).toBe(out.device.id);
      expect(out.prefetch.pulls).toHaveLength(1);
      const pull = out.prefetch.pulls[0]!;
      expect(pull.state).toBe('verified');
      expect(pull.sizeBytes).toBeGreaterThan(0);
      expect(pull.fetchedBytes).toBeGreaterThan(0);
      expect(pull.fetchedBytes).toBeLessThanOrEqual(pull.sizeBytes);
      const text = await scrape();
      const labels = `{device="${out.device.id}",layer="${pull.layer}"}`;
      expect(sample(text, 'dadi_pull_size_bytes', labels)).toBe(pull.sizeBytes);
      expect(sample(text, 'dadi_pull_fetched_bytes', labels)).toBe(pull.fetchedBytes);
      expect(sample(text, 'dadi_pull_layers', '{state="verified"}')).toBe(1);
      expect(sample(text, 'dadi_devices', '{mode="ro"}')).toBe(1);
      expect((await status()).devices.map((d) => d.id)).toEqual([out.device.id]);
    } finally {
      const u = await dadi(['umount', '--json', mnt]);
      expect(u.code, u.stderr).toBe(0);
      expect(checkJsonOutput('umount', u.stdout)).toMatchObject({ id: out.device.id, target: mnt });
    }
    expect(sample(await scrape(), 'dadi_devices', '{mode="ro"}')).toBe(0);
  });

  it('failed requests count by code; other paths are 404', async () => {
    const um = await dadi(['umount', join(root, 'nowhere')]);
    expect(um.code).toBe(1);
    const text = await scrape();
    expect(sample(text, 'dadi_errors_total', '{kind="request",code="ENOTFOUND"}')).toBe(1);
    expect((await fetch(metricsUrl.replace('/metrics', '/'))).status).toBe(404);
  });

  it('a bad --metrics-address stops the daemon with a message naming the flag', async () => {
    const r = await runDadi(['daemon', '--state', join(root, 'other-state'), '--metrics-address', 'localhost:99999']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('dadi: --metrics-address: "localhost:99999" is not HOST:PORT');
  });
});
