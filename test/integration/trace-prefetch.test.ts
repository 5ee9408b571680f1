// Issue #11 item 3 through the CLI, with a real registry and real runc: `dadi record-trace` of a
// run pushes the image + the reference's acceleration layer (checked byte by byte: tar header,
// media type, annotations, config history); a cold `dadi run` of it replays the recorded reads
// (counters) and prints the right output; a trace with a bad checksum is dropped with a warning,
// never served; auto-trace records on a first start, replays on the next cold one, and
// `dadi trace ls|push` publish it. Nothing of ours may remain afterwards.

import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryFile } from '../../src/blockfile/memory.js';
import { decodeTarHeader } from '../../src/format/tar/header.js';
import { detectTar } from '../../src/format/tar/index.js';
import { traceImageConfig } from '../../src/image/trace-image.js';
import { encodeJson, MediaType, OverlaybdAnnotation, sha256Of } from '../../src/oci/index.js';
import { accelerationLayerBlob, accelerationLayerDescriptor } from '../../src/prefetch/accel-layer.js';
import { decodeTrace, encodeTrace } from '../../src/prefetch/trace-format.js';
import { planReplay } from '../../src/prefetch/trace-plan.js';
import { decodeBlobRanges, TRACE_BLOB_RANGES_ANNOTATION } from '../../src/prefetch/trace-ranges.js';
import { parseReference, RegistryClient } from '../../src/registry/index.js';
import { DaemonClient } from '../../src/runtime/index.js';
import type { DeviceTraceInfo } from '../../src/runtime/protocol.js';
import { run, runDadi } from '../cli.js';
import { fixture, haveFixtures } from '../fixtures.js';
import { missing, requireOrSkip } from '../require.js';
import { pushImage } from './push-image.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { buildRootfs, imageToLayer, leftovers, makeExt4, shutDownAndScrub } from './runtime-helpers.js';

const HAVE =
  haveRegistry('trace record/replay') && requireOrSkip('trace record/replay', missing({ root: true, tools: ['runc'] }));

type TraceStats = DeviceTraceInfo;

describe.skipIf(!HAVE)('trace record and replay (acceleration layer, auto-trace)', () => {
  let root: string;
  let reg: TestRegistry;
  let ref: string;
  let state: string;
  let cacheDir: string;
  let colds = 0;
  let client: RegistryClient;
  const dadi = (args: string[]) => runDadi(args, { env: { DADI_STATE: state, DADI_CACHE_DIR: cacheDir } });
  // The container reads its shell, libc, cat and the file, then lingers so that the replay ends first.
  const CMD = ['/bin/sh', '-c', 'cat /etc/os-release; sleep 2'];

  /** Stop the daemon and give the next one an empty block cache: the next start is cold. */
  async function cold(): Promise<void> {
    const c = await DaemonClient.connect({ stateDir: state, autoStart: false }).catch(() => undefined);
    await c?.shutdown();
    cacheDir = join(root, `cache-${++colds}`);
  }

  async function runStats(image: string, extra: string[] = []) {
    const r = await dadi(['run', '--rm', '--trace-stats', ...extra, image, '--', ...CMD]);
    expect(r.code, r.stderr).toBe(0);
    const line = r.stderr.split('\n').find((l) => l.startsWith('{"trace"'));
    expect(line, r.stderr).toBeDefined();
    return { stdout: r.stdout, trace: JSON.parse(line!).trace as TraceStats | null };
  }

  beforeAll(async () => {
    root = await mkdtemp('/var/tmp/dadi-trace-');
    state = join(root, 'state');
    cacheDir = join(root, 'cache-0');
    reg = await startRegistry({ auth: 'none' });
    client = new RegistryClient();
    const rootfs = join(root, 'rootfs');
    await buildRootfs(rootfs);
    await makeExt4(rootfs, join(root, 'disk.img'));
    await imageToLayer(join(root, 'disk.img'), join(root, 'layer.tar'));
    ref = (await pushImage(reg.host, 'dadi/trace', 'v1', [join(root, 'layer.tar')], { Env: ['PATH=/usr/bin:/bin'] }))
      .ref;
  }, 120_000);

  afterAll(async () => {
    try {
      await client?.close();
      await shutDownAndScrub(state, []);
      expect(await leftovers(state, [])).toEqual([]);
    } finally {
      await reg?.stop();
      if (root) await rm(root, { recursive: true, force: true });
    }
  });

  let traced: string;
  let recorded: Uint8Array;

  it('record-trace pushes the image plus an acceleration layer in the reference layout', async () => {
    traced = `${reg.host}/dadi/trace:v1-trace`;
    const out = join(root, 'recorded.trace');
    const r = await dadi(['record-trace', '--time', '30', '--trace-out', out, ref, traced, '--', ...CMD]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('dadi test rootfs');
    recorded = await readFile(out);
    const records = decodeTrace(recorded, out);
    expect(records.length).toBeGreaterThan(0);
    expect(records.every((x) => x.layer === 0 && x.count > 0)).toBe(true);

    const base = await client.resolveImage(parseReference(ref));
    const img = await client.resolveImage(parseReference(traced));
    const m = img.manifest;
    expect(img.mediaType).toBe(MediaType.dockerManifest);
    expect(m.layers).toHaveLength(2);
    // The base layer unchanged, the acceleration layer on top.
    expect(m.layers[0]).toEqual(base.manifest.layers[0]);
    const top = m.layers[1]!;
    expect(top.mediaType).toBe(MediaType.ociLayer);
    // The reference's annotations, plus ours: the replay's blob ranges (ignored by the reference),
    // within the base layer, in the order of the recorded reads.
    const { [TRACE_BLOB_RANGES_ANNOTATION]: blobRanges, ...reference } = top.annotations ?? {};
    expect(reference).toEqual({
      [OverlaybdAnnotation.accelerationLayer]: 'yes',
      [OverlaybdAnnotation.blobDigest]: top.digest,
      [OverlaybdAnnotation.blobSize]: String(top.size),
      [OverlaybdAnnotation.version]: '0.1.0',
    });
    const ranges = decodeBlobRanges(blobRanges, 1);
    expect(ranges?.length).toBeGreaterThan(0);
    expect(ranges!.every((r) => r.layer === 0 && r.offset + r.length <= m.layers[0]!.size)).toBe(true);
    // The layer: a Go-style ustar tar of one file `trace`, mode 0444, payload at 512 = the trace.
    const blob = await client.fetchBlob(parseReference(traced), top.digest);
    const h = decodeTarHeader(blob.subarray(0, 512), { strict: true });
    expect(h).toMatchObject({
      format: 'ustar',
      checksumOk: true,
      mode: 0o444,
      uid: 0,
      gid: 0,
      mtime: 0,
      size: recorded.length,
    });
    expect(Buffer.from(h.name).toString()).toBe('trace');
    expect(await detectTar(new MemoryFile(blob))).toMatchObject({ payloadOffset: 512, memberName: 'trace' });
    expect(Buffer.from(blob.subarray(512, 512 + recorded.length)).equals(Buffer.from(recorded))).toBe(true);
    expect(blob.length).toBe(512 + Math.ceil(recorded.length / 512) * 512 + 1024);
    // The config: diff_id appended, "Acceleration Layer" history first, created reset.
    const { config, bytes: configBytes } = await client.getImageConfig(parseReference(traced), m.config);
    // Also in the manifest (descriptor data, OCI 1.1): a traced start needs no GET for it.
    expect(Buffer.from(m.config.data ?? '', 'base64').equals(configBytes)).toBe(true);
    const { config: baseConfig } = await client.getImageConfig(parseReference(ref), base.manifest.config);
    expect(config.rootfs.diff_ids).toEqual([...baseConfig.rootfs.diff_ids, top.digest]);
    expect(config.history?.[0]).toMatchObject({ created_by: 'Acceleration Layer' });
    expect(config.history?.slice(1)).toEqual(baseConfig.history);
    expect(config.created).toBe(config.history?.[0]?.created);
    // Refused a second time, as the reference refuses.
    const again = await dadi(['record-trace', '--time', '5', traced, `${traced}2`, '--', 'true']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already has an acceleration layer/);
  }, 180_000);

  it('a cold run of the traced image replays the recorded reads and prints the right output', async () => {
    await cold();
    const r = await runStats(traced);
    expect(r.stdout).toContain('dadi test rootfs');
    expect(r.trace).toMatchObject({ mode: 'replay', source: 'acceleration-layer' });
    const s = r.trace!.replay!;
    // The registry layers are cached ZFiles: their ranges are prefetched, joined where they are
    // stored (planPrefetch, with the layers' block offsets), at most as many as the reads' plan.
    const reads = planReplay(decodeTrace(recorded, 'recorded'));
    expect(s).toMatchObject({
      records: decodeTrace(recorded, 'r').length,
      prefetched: true,
      failed: 0,
      finished: true,
    });
    expect(s.cancelled).toBe(false);
    expect(s.planned).toBeGreaterThan(0);
    expect(s.planned).toBeLessThanOrEqual(reads.length);
    expect(s.reads).toBe(s.planned);
    expect(s.bytes).toBeGreaterThanOrEqual(Math.max(...reads.map((p) => p.count)));
    // Browsing reads the disk layers only (the acceleration layer is left out of the stack).
    const cat = await dadi(['cat', traced, '/etc/os-release']);
    expect(cat.code, cat.stderr).toBe(0);
    expect(cat.stdout).toContain('dadi test rootfs');
    // Opting out: no replay, same output.
    await cold();
    const off = await runStats(traced, ['--no-trace']);
    expect(off.stdout).toContain('dadi test rootfs');
    expect(off.trace).toBeNull();
  }, 120_000);

  it('a trace with a bad checksum is dropped with a warning; the run is unaffected', async () => {
    const bad = encodeTrace(decodeTrace(recorded, 'r'));
    bad[24 + 16] ^= 0x40; // an offset of the first record: the checksum no longer matches
    const repo = parseReference(`${reg.host}/dadi/trace`);
    const layerBlob = accelerationLayerBlob(bad);
    const layer = await client.pushBlob(repo, layerBlob);
    const base = await client.resolveImage(parseReference(ref));
    const { config } = await client.getImageConfig(repo, base.manifest.config);
    const cfg = traceImageConfig(config, layer.digest, new Date());
    await client.pushBlob(repo, cfg);
    const manifest = encodeJson({
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, digest: sha256Of(cfg), size: cfg.length },
      layers: [...base.manifest.layers, accelerationLayerDescriptor({ digest: layer.digest, size: layerBlob.length })],
    });
    await client.putManifest({ ...repo, tag: 'bad-trace' }, manifest, MediaType.dockerManifest);
    await cold();
    const r = await runStats(`${reg.host}/dadi/trace:bad-trace`);
    expect(r.stdout).toContain('dadi test rootfs');
    expect(r.trace).toMatchObject({ mode: 'replay', warning: expect.stringMatching(/dropped/) });
    expect(r.trace!.replay).toMatchObject({ records: 0, reads: 0 });
    const log = await readFile(join(state, 'daemon.log'), 'utf8');
    expect(log).toMatch(
      /warning: trace of acceleration layer .*bad-trace|warning: trace of acceleration layer .* dropped .*checksum/,
    );
  }, 120_000);

  it('auto-trace records on the first start, replays on the next cold one; trace ls/push publish it', async () => {
    await cold();
    const first = await runStats(ref);
    expect(first.stdout).toContain('dadi test rootfs');
    expect(first.trace).toMatchObject({ mode: 'record', source: 'auto-trace' });
    expect(first.trace!.recorded).toBeGreaterThan(0);
    const ls = await dadi(['trace', 'ls', '--json']);
    expect(ls.code, ls.stderr).toBe(0);
    const list = JSON.parse(ls.stdout) as Array<{ manifestDigest: string; image: string; records: number }>;
    expect(list).toHaveLength(1);
    const base = await client.resolveImage(parseReference(ref));
    expect(list[0]).toMatchObject({ manifestDigest: base.digest, records: first.trace!.recorded });

    await cold();
    const second = await runStats(ref);
    expect(second.stdout).toContain('dadi test rootfs');
    expect(second.trace).toMatchObject({ mode: 'replay', source: 'auto-trace' });
    expect(second.trace!.replay).toMatchObject({ records: first.trace!.recorded, failed: 0 });
    expect(second.trace!.replay!.reads).toBeGreaterThan(0);

    const pushed = `${reg.host}/dadi/trace:v1-auto`;
    const p = await dadi(['trace', 'push', base.digest, pushed]);
    expect(p.code, p.stderr).toBe(0);
    const img = await client.resolveImage(parseReference(pushed));
    expect(img.manifest.layers.at(-1)?.annotations?.[OverlaybdAnnotation.accelerationLayer]).toBe('yes');
    await cold();
    const third = await runStats(pushed);
    expect(third.trace).toMatchObject({ mode: 'replay', source: 'acceleration-layer' });
    expect(third.trace!.replay!.records).toBe(first.trace!.recorded);
  }, 180_000);

  it('mount replays too, and stops replaying at umount', async () => {
    await cold();
    const dir = join(root, 'mnt');
    await mkdir(dir, { recursive: true });
    const m = await dadi(['mount', traced, dir]);
    expect(m.code, m.stderr).toBe(0);
    try {
      expect(await readFile(join(dir, 'etc/os-release'), 'utf8')).toContain('dadi test rootfs');
      const ps = JSON.parse((await dadi(['ps', '--json'])).stdout);
      const dev = ps.devices.find((d: { target: string }) => d.target === dir);
      expect(dev.trace).toMatchObject({ mode: 'replay', source: 'acceleration-layer' });
    } finally {
      const u = await dadi(['umount', dir]);
      expect(u.code, u.stderr).toBe(0);
    }
  }, 120_000);

  it.skipIf(!haveFixtures('trace replay on a reference-made layer'))(
    'a dadi-recorded trace replays on a layer the reference tools made',
    async () => {
      const l1 = await pushImage(reg.host, 'ref/l1', 'v1', [fixture('overlaybd-samples/zfile/l1.zfile-lz4.tar')]);
      const files = ['data/pattern.bin', 'data/random.bin', 'etc/hostname'];
      const want = new Map<string, Buffer>();
      const expected = join(root, 'l1-files');
      await mkdir(expected, { recursive: true });
      const x = await run('tar', [
        '-xf',
        fixture('overlaybd-samples/inputs/l1.tar'),
        '-C',
        expected,
        ...files.map((f) => `./${f}`),
      ]);
      expect(x.code, x.stderr).toBe(0);
      for (const f of files) want.set(f, await readFile(join(expected, f)));
      const dir = join(root, 'mnt-l1');
      await mkdir(dir, { recursive: true });
      const readAll = async () => {
        for (const f of files)
          expect((await readFile(join(dir, f))).toString('latin1')).toBe(want.get(f)!.toString('latin1'));
      };
      const mountAndRead = async (image: string) => {
        const m = await dadi(['mount', image, dir]);
        expect(m.code, m.stderr).toBe(0);
        try {
          await readAll();
          const dev = JSON.parse((await dadi(['ps', '--json'])).stdout).devices.find(
            (d: { target: string }) => d.target === dir,
          );
          return dev.trace as TraceStats;
        } finally {
          const u = await dadi(['umount', dir]);
          expect(u.code, u.stderr).toBe(0);
        }
      };
      // First mount on this host: auto-trace records the reads of the files.
      await cold();
      expect(await mountAndRead(l1.ref)).toMatchObject({ mode: 'record', source: 'auto-trace' });
      const traced = `${reg.host}/ref/l1:v1-trace`;
      const p = await dadi(['trace', 'push', l1.manifestDigest, traced]);
      expect(p.code, p.stderr).toBe(0);
      // Cold mount of the reference layer + the dadi trace: the replay reads every planned range.
      await cold();
      const m = await dadi(['mount', traced, dir]);
      expect(m.code, m.stderr).toBe(0);
      try {
        let trace: TraceStats | undefined;
        for (let i = 0; i < 100; i++) {
          const ps = JSON.parse((await dadi(['ps', '--json'])).stdout);
          trace = ps.devices.find((d: { target: string }) => d.target === dir)?.trace;
          if (trace?.replay?.finished) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(trace).toMatchObject({ mode: 'replay', source: 'acceleration-layer' });
        expect(trace!.replay).toMatchObject({ finished: true, failed: 0, cancelled: false });
        expect(trace!.replay!.reads).toBe(trace!.replay!.planned);
        expect(trace!.replay!.reads).toBeGreaterThan(0);
        await readAll();
      } finally {
        const u = await dadi(['umount', dir]);
        expect(u.code, u.stderr).toBe(0);
      }
    },
    120_000,
  );
});
