// The snapshotter's model without containerd or the kernel: mounts it hands out for ordinary and
// DADI chains, ALREADY_EXISTS for DADI layers, state that survives a reopen, filters, labels,
// refusals. A fake device set records what would be mounted.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OverlaybdAnnotation } from '../oci/index.js';
import { Label } from './labels.js';
import {
  type DeviceSet,
  matchesFilters,
  SnapshotError,
  Snapshotter,
  type StackTrace,
  type WritableFiles,
} from './snapshotter.js';
import type { RemoteLayer } from './store.js';

const digest = (c: string) => `sha256:${c.repeat(64)}`;

function fakeDevices() {
  const mounts: Array<{ layers: RemoteLayer[]; target: string; writable?: WritableFiles; trace?: StackTrace }> = [];
  const devices: DeviceSet = {
    async mount(layers, target, _label, writable, trace) {
      mounts.push({ layers, target, ...(writable ? { writable } : {}), ...(trace ? { trace } : {}) });
    },
    async umount() {},
  };
  return { devices, mounts };
}

function dadiLabels(chain: string, blob: string): Record<string, string> {
  return {
    [Label.targetRef]: chain,
    [Label.imageRef]: '127.0.0.1:5000/app:v1',
    [OverlaybdAnnotation.blobDigest]: blob,
    [OverlaybdAnnotation.blobSize]: '4096',
  };
}

async function rejectsWith(p: Promise<unknown>, status: SnapshotError['status']): Promise<void> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(SnapshotError);
  expect((e as SnapshotError).status).toBe(status);
}

describe('Snapshotter', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'dadi-snapshotter-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('ordinary layers: a bind for the first, overlays over committed parents, views read-only', async () => {
    const { devices } = fakeDevices();
    const s = await Snapshotter.open(root, devices);
    const [m1] = await s.prepare('l1-extract', '', {});
    expect(m1).toEqual({
      type: 'bind',
      source: expect.stringMatching(/\/snapshots\/1\/fs$/),
      options: ['rw', 'rbind'],
    });
    await s.commit('l1', 'l1-extract', { a: 'b' });
    const [m2] = await s.prepare('l2-extract', 'l1', {});
    expect(m2!.type).toBe('overlay');
    expect(m2!.options).toContain(`lowerdir=${join(root, 'snapshots/1/fs')}`);
    expect(m2!.options).toContain(`upperdir=${join(root, 'snapshots/2/fs')}`);
    await s.commit('l2', 'l2-extract', {});
    const [v] = await s.view('v', 'l2', {});
    expect(v!.options).toEqual([`lowerdir=${join(root, 'snapshots/2/fs')}:${join(root, 'snapshots/1/fs')}`]);
    const [v1] = await s.view('v1', 'l1', {});
    expect(v1).toEqual({ type: 'bind', source: join(root, 'snapshots/1/fs'), options: ['ro', 'rbind'] });
    expect((await s.stat('l1')).labels).toEqual({ a: 'b' });
    expect((await s.stat('l1')).kind).toBe('COMMITTED');
  });

  it("mounts an image's stack when its top layer is committed with mount-ahead; a Prepare joins that mount", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const mounts: string[] = [];
    const devices: DeviceSet = {
      async mount(_layers, target) {
        mounts.push(target);
        await held;
      },
      async umount() {},
    };
    const s = await Snapshotter.open(root, devices);
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    expect(mounts).toEqual([]);
    await rejectsWith(
      s.prepare('extract-2', 'chain1', { ...dadiLabels('chain2', digest('b')), [Label.mountAhead]: 'yes' }),
      'ALREADY_EXISTS',
    );
    // The stack of the top layer is being mounted before any container asks for it.
    await vi.waitFor(() => expect(mounts).toEqual([join(root, 'snapshots/2/mnt')]));
    const rootfs = s.prepare('ctr-1', 'chain2', {});
    // The container's Prepare waits for that mount instead of starting another.
    await vi.waitFor(() => expect(existsSync(join(root, 'snapshots/3/work'))).toBe(true));
    await new Promise((r) => setTimeout(r, 50));
    expect(mounts).toHaveLength(1);
    // Meanwhile the snapshotter answers other calls: a Prepare waits for its mount outside the queue.
    expect((await s.stat('chain2')).kind).toBe('COMMITTED');
    expect(await s.prepare('plain-1', '', {})).toEqual([
      { type: 'bind', source: join(root, 'snapshots/4/fs'), options: ['rw', 'rbind'] },
    ]);
    release();
    const [m] = await rootfs;
    expect(m!.options).toContain(`lowerdir=${join(root, 'snapshots/2/mnt')}`);
  });

  it("records a pull's layers ahead with one save and mounts the top one; containerd's Prepares find them", async () => {
    const { devices, mounts } = fakeDevices();
    const s = await Snapshotter.open(root, devices);
    const top = { ...dadiLabels('chain2', digest('b')), [Label.mountAhead]: 'yes' };
    await s.recordRemoteLayers([
      { chainId: 'chain1', parent: '', labels: dadiLabels('chain1', digest('a')) },
      { chainId: 'chain2', parent: 'chain1', labels: top },
      // Not a DADI layer: it ends the list, and its Prepare decides.
      { chainId: 'chain3', parent: 'chain2', labels: { [Label.targetRef]: 'chain3' } },
      { chainId: 'chain4', parent: 'chain3', labels: dadiLabels('chain4', digest('d')) },
    ]);
    await vi.waitFor(() => expect(mounts.map((m) => m.target)).toEqual([join(root, 'snapshots/2/mnt')]));
    expect(mounts[0]!.layers.map((l) => l.digest)).toEqual([digest('a'), digest('b')]);
    // Saved: a reopened snapshotter has both, committed, with containerd's labels and the remote mark.
    const again = await Snapshotter.open(root, fakeDevices().devices);
    expect((await again.walk([])).map((i) => [i.name, i.parent, i.kind])).toEqual([
      ['chain1', '', 'COMMITTED'],
      ['chain2', 'chain1', 'COMMITTED'],
    ]);
    expect((await again.stat('chain2')).labels).toEqual({ ...top, [Label.remote]: 'remote snapshot' });
    // containerd's Prepares of the layers: ALREADY_EXISTS, no second mount; the others as before.
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    await rejectsWith(s.prepare('extract-2', 'chain1', top), 'ALREADY_EXISTS');
    expect(mounts).toHaveLength(1);
    // (The fake mounts nothing, so a snapshot over the stack mounts it again.)
    expect(await s.prepare('extract-3', 'chain2', { [Label.targetRef]: 'chain3' })).toHaveLength(1);
    const n = mounts.length;
    // Recorded again (a second pull of the image): nothing changes, nothing mounts.
    await s.recordRemoteLayers([{ chainId: 'chain1', parent: '', labels: dadiLabels('chain1', digest('a')) }]);
    expect(mounts).toHaveLength(n);
    expect((await s.walk([])).map((i) => i.name)).toEqual(['chain1', 'chain2', 'extract-3']);
  });

  it("launch files told ahead go to the image's device once its mount ahead is done, and nowhere before", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const events: string[] = [];
    const devices: DeviceSet = {
      async mount(_layers, target) {
        events.push(`mount ${target}`);
        await held;
        events.push('mounted');
      },
      async launch(target, launch) {
        events.push(`launch ${target} ${launch.files?.join(',')}`);
      },
      async umount() {},
    };
    const s = await Snapshotter.open(root, devices);
    // Not a DADI layer snapshot yet, or not mounting: nothing is sent (the files wait for a mount).
    await s.launchAhead('chain1', { files: ['/x'] });
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    await s.launchAhead('chain1', { files: ['/y'] });
    expect(events).toEqual([]);
    await rejectsWith(
      s.prepare('extract-2', 'chain1', { ...dadiLabels('chain2', digest('b')), [Label.mountAhead]: 'yes' }),
      'ALREADY_EXISTS',
    );
    const told = s.launchAhead('chain2', { files: ['/lib64/ld-linux-x86-64.so.2', '/etc/ld.so.cache'] });
    await vi.waitFor(() => expect(events).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 20));
    expect(events).toHaveLength(1);
    release();
    await told;
    const target = join(root, 'snapshots/2/mnt');
    expect(events).toEqual([
      `mount ${target}`,
      'mounted',
      `launch ${target} /lib64/ld-linux-x86-64.so.2,/etc/ld.so.cache`,
    ]);
  });

  it("a container snapshot's command is told to its image's device once containerd has the container", async () => {
    const launched: Array<{ target: string; exec?: string[]; args?: string[] }> = [];
    const devices: DeviceSet = {
      async mount() {},
      async launch(target, launch) {
        launched.push({ target, exec: launch.exec, args: launch.args });
      },
      async umount() {},
    };
    const asked: string[] = [];
    // containerd creates the container after the first Mounts (ctr's user lookup), before the second.
    const s = await Snapshotter.open(root, devices, {
      containerLaunch: async (key) => {
        asked.push(key);
        return asked.length === 1 ? null : { exec: ['/usr/bin/python3'], args: ['-c', 'import json'] };
      },
    });
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    await s.prepare('ns/7/c1', 'chain1', {});
    expect(asked).toEqual([]);
    await s.mounts('ns/7/c1');
    await vi.waitFor(() => expect(asked).toEqual(['ns/7/c1']));
    expect(launched).toEqual([]);
    await s.mounts('ns/7/c1');
    await vi.waitFor(() => expect(launched).toHaveLength(1));
    expect(launched[0]).toEqual({
      target: join(root, 'snapshots/1/mnt'),
      exec: ['/usr/bin/python3'],
      args: ['-c', 'import json'],
    });
    // Told once; a snapshot over ordinary layers only is never asked about.
    await s.mounts('ns/7/c1');
    await s.prepare('plain-extract', '', {});
    await s.mounts('plain-extract');
    await new Promise((r) => setTimeout(r, 20));
    expect(asked).toHaveLength(2);
    expect(launched).toHaveLength(1);
  });

  it('launch files told before the snapshot exists (config before the layer) go with its mount', async () => {
    const mounts: Array<{ target: string; launch?: string[] }> = [];
    const launched: string[] = [];
    const devices: DeviceSet = {
      async mount(_layers, target, _label, _writable, _trace, launch) {
        mounts.push({ target, ...(launch ? { launch: launch.files } : {}) });
      },
      async launch(target) {
        launched.push(target);
      },
      async umount() {},
    };
    const s = await Snapshotter.open(root, devices);
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    // The pull has the config before containerd asked for the top layer: nothing is mounting yet.
    await s.launchAhead('chain2', { files: ['/lib64/ld-linux-x86-64.so.2'] });
    await s.launchAhead('chain9', { files: ['/other'] });
    await rejectsWith(
      s.prepare('extract-2', 'chain1', { ...dadiLabels('chain2', digest('b')), [Label.mountAhead]: 'yes' }),
      'ALREADY_EXISTS',
    );
    await vi.waitFor(() => expect(mounts).toHaveLength(1));
    expect(mounts).toEqual([{ target: join(root, 'snapshots/2/mnt'), launch: ['/lib64/ld-linux-x86-64.so.2'] }]);
    // Taken once: a later mount of the same stack (the fake mounts nothing, so a Prepare mounts again) asks for nothing.
    await s.prepare('ctr-1', 'chain2', {});
    expect(mounts.map((m) => m.launch)).toEqual([['/lib64/ld-linux-x86-64.so.2'], undefined]);
    expect(launched).toEqual([]);
  });

  it("a pull's early launch files go with the mount ahead; the image's own, told before it starts, replace them", async () => {
    const mounts: Array<string[] | undefined> = [];
    const devices: DeviceSet = {
      async mount(_layers, _target, _label, _writable, _trace, launch) {
        mounts.push(launch?.files);
      },
      async umount() {},
    };
    const s = await Snapshotter.open(root, devices);
    const top = (c: string, d: string) => ({ ...dadiLabels(c, digest(d)), [Label.mountAhead]: 'yes' });
    await s.recordRemoteLayers([{ chainId: 'chain1', parent: '', labels: top('chain1', 'a') }], {
      files: ['/etc/passwd', '/etc/group'],
    });
    await vi.waitFor(() => expect(mounts).toHaveLength(1));
    await s.launchAhead('chain2', { files: ['/etc/passwd', '/lib64/ld-linux-x86-64.so.2'] });
    await s.recordRemoteLayers([{ chainId: 'chain2', parent: '', labels: top('chain2', 'b') }], {
      files: ['/etc/passwd'],
    });
    await vi.waitFor(() => expect(mounts).toHaveLength(2));
    expect(mounts).toEqual([
      ['/etc/passwd', '/etc/group'],
      ['/etc/passwd', '/lib64/ld-linux-x86-64.so.2'],
    ]);
  });

  it('a layer whose state cannot be saved is not kept, nor the mount ahead it started', async () => {
    const { devices, mounts } = fakeDevices();
    const s = await Snapshotter.open(root, devices);
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    // The state file's place is taken by a folder with something in it: the rename onto it fails.
    await rm(join(root, 'metadata.json'));
    await mkdir(join(root, 'metadata.json', 'x'), { recursive: true });
    const e = await s
      .prepare('extract-2', 'chain1', { ...dadiLabels('chain2', digest('b')), [Label.mountAhead]: 'yes' })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect(e).not.toBeInstanceOf(SnapshotError);
    // The mount ahead started before the save; the layer, its folder and that mount's wait are gone.
    expect(mounts.map((m) => m.target)).toEqual([join(root, 'snapshots/2/mnt')]);
    await rejectsWith(s.stat('chain2'), 'NOT_FOUND');
    expect(existsSync(join(root, 'snapshots/2'))).toBe(false);
    expect((await s.stat('chain1')).kind).toBe('COMMITTED');
  });

  it('a mount ahead that fails is tried again at Prepare, whose failure names the image and leaves no snapshot', async () => {
    const tried: string[] = [];
    const devices: DeviceSet = {
      async mount(_layers, target) {
        tried.push(target);
        throw new Error('registry unreachable');
      },
      async umount() {},
    };
    const logged: string[] = [];
    const s = await Snapshotter.open(root, devices, { log: (m) => logged.push(m) });
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    await rejectsWith(
      s.prepare('extract-2', 'chain1', { ...dadiLabels('chain2', digest('b')), [Label.mountAhead]: 'yes' }),
      'ALREADY_EXISTS',
    );
    await vi.waitFor(() => expect(logged.join('\n')).toMatch(/ahead of its containers: .*registry unreachable/));
    await expect(s.prepare('ctr-1', 'chain2', {})).rejects.toThrow(
      'mounting 127.0.0.1:5000/app, 2 layers (snapshot chain2): registry unreachable',
    );
    expect(tried).toHaveLength(2);
    await rejectsWith(s.stat('ctr-1'), 'NOT_FOUND');
    // Only the image's top layer keeps a folder (its empty mount point); the container's is gone.
    expect(await readdir(join(root, 'snapshots'))).toEqual(['2']);
  });

  it("an image's acceleration layer is committed without data and replayed, never stacked", async () => {
    const { devices, mounts } = fakeDevices();
    const s = await Snapshotter.open(root, devices);
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    const accel = { ...dadiLabels('chain2', digest('b')), [OverlaybdAnnotation.accelerationLayer]: 'yes' };
    await rejectsWith(s.prepare('extract-2', 'chain1', accel), 'ALREADY_EXISTS');
    await s.prepare('ctr-1', 'chain2', {});
    const layer = (d: string) => ({ registry: '127.0.0.1:5000', repository: 'app', digest: d, size: 4096 });
    expect(mounts).toEqual([
      {
        layers: [layer(digest('a'))],
        target: join(root, 'snapshots/2/mnt'),
        trace: { accelerationLayer: { ...layer(digest('b')), acceleration: true } },
      },
    ]);
  });

  it('record-trace labels: a container records into an absent or empty file, replays a full one, on its own device', async () => {
    const { devices, mounts } = fakeDevices();
    const s = await Snapshotter.open(root, devices);
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    const traceLabels = (path: string) => ({ [Label.recordTrace]: 'yes', [Label.recordTracePath]: path });
    const fresh = join(root, 'fresh.trace');
    const [m] = await s.prepare('ctr-rec', 'chain1', traceLabels(fresh));
    // Its own device, not the image's shared one: the reads recorded are this container's.
    expect(m!.options).toContain(`lowerdir=${join(root, 'snapshots/2/mnt')}`);
    expect(mounts.at(-1)).toMatchObject({ target: join(root, 'snapshots/2/mnt'), trace: { record: fresh } });
    const full = join(root, 'full.trace');
    await writeFile(full, 'recorded before');
    await s.prepare('ctr-replay', 'chain1', traceLabels(full));
    expect(mounts.at(-1)).toMatchObject({ target: join(root, 'snapshots/3/mnt'), trace: { replay: full } });
    // A container without the labels uses the image's device.
    await s.prepare('ctr-plain', 'chain1', {});
    expect(mounts.at(-1)).toEqual({ layers: [expect.anything()], target: join(root, 'snapshots/1/mnt') });
    await expect(s.prepare('ctr-bad', 'chain1', traceLabels('relative.trace'))).rejects.toThrow(
      /record-trace-path: an absolute path is needed/,
    );
    expect(existsSync(join(root, 'snapshots/5'))).toBe(false);
  });

  it('DADI layers are committed without data (ALREADY_EXISTS); a rootfs overlays the mounted stack', async () => {
    const { devices, mounts } = fakeDevices();
    const s = await Snapshotter.open(root, devices);
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    await rejectsWith(s.prepare('extract-2', 'chain1', dadiLabels('chain2', digest('b'))), 'ALREADY_EXISTS');
    // Containerd finds the committed layer by its target label and parent.
    const found = await s.walk([`labels."${Label.targetRef}"==chain2`]);
    expect(found.map((i) => [i.name, i.parent, i.kind])).toEqual([['chain2', 'chain1', 'COMMITTED']]);
    expect(mounts).toEqual([]);
    const [m] = await s.prepare('container', 'chain2', {});
    expect(m!.type).toBe('overlay');
    expect(m!.options).toContain(`lowerdir=${mounts[0]!.target}`);
    expect(mounts[0]!.layers.map((l) => l.digest)).toEqual([digest('a'), digest('b')]);
    expect(mounts[0]!.layers[0]).toMatchObject({ registry: '127.0.0.1:5000', repository: 'app', size: 4096 });
  });

  it('block mode: a container over DADI layers gets its own read-write device, which commit refuses', async () => {
    const { devices, mounts } = fakeDevices();
    const s = await Snapshotter.open(root, devices, { rwMode: 'block' });
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    const [m] = await s.prepare('container', 'chain1', {});
    expect(m).toEqual({ type: 'bind', source: join(root, 'snapshots/2/mnt'), options: ['rw', 'rbind'] });
    expect(mounts).toEqual([
      {
        layers: [expect.objectContaining({ digest: digest('a') })],
        target: join(root, 'snapshots/2/mnt'),
        writable: {
          data: join(root, 'snapshots/2/block/writable_data'),
          index: join(root, 'snapshots/2/block/writable_index'),
        },
      },
    ]);
    await rejectsWith(s.commit('layer', 'container', {}), 'FAILED_PRECONDITION');
    // The label picks the mode per snapshot, as the reference's does.
    const [o] = await s.prepare('c2', 'chain1', { [Label.writable]: 'overlayfs' });
    expect(o!.type).toBe('overlay');
    // Ordinary images keep overlayfs whatever the mode.
    await s.prepare('plain-extract', '', {});
    await s.commit('plain', 'plain-extract', {});
    expect((await s.prepare('c3', 'plain', {}))[0]!.type).toBe('overlay');
  });

  it('a DADI layer label without an image reference is unpacked like any layer', async () => {
    const s = await Snapshotter.open(root, fakeDevices().devices);
    const labels = dadiLabels('chain1', digest('a'));
    delete labels[Label.imageRef];
    const [m] = await s.prepare('extract-1', '', labels);
    expect(m!.type).toBe('bind');
  });

  it('TurboOCI layers, and trace layers not over DADI layers, are unpacked, not taken as remote LSMT layers', async () => {
    const s = await Snapshotter.open(root, fakeDevices().devices);
    const turbo = { ...dadiLabels('chain1', digest('a')), [OverlaybdAnnotation.version]: '0.1.0-turbo.ociv1' };
    expect((await s.prepare('extract-1', '', turbo))[0]!.type).toBe('bind');
    const trace = { ...dadiLabels('chain2', digest('b')), [OverlaybdAnnotation.accelerationLayer]: 'yes' };
    expect((await s.prepare('extract-2', '', trace))[0]!.type).toBe('bind');
  });

  it('bad DADI labels are refused with the label named', async () => {
    const s = await Snapshotter.open(root, fakeDevices().devices);
    const bad = { ...dadiLabels('chain1', digest('a')), [OverlaybdAnnotation.blobSize]: '-3' };
    await expect(s.prepare('extract-1', '', bad)).rejects.toThrow(/blob-size: not a size/);
  });

  it('state survives a reopen, and devices of active snapshots are attached again', async () => {
    const first = fakeDevices();
    const s = await Snapshotter.open(root, first.devices);
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    await s.prepare('container', 'chain1', {});
    await s.prepare('plain', '', {});
    const again = fakeDevices();
    const reopened = await Snapshotter.open(root, again.devices);
    expect(again.mounts.map((m) => m.layers.map((l) => l.digest))).toEqual([[digest('a')]]);
    expect((await reopened.walk([])).map((i) => i.name).sort()).toEqual(['chain1', 'container', 'plain']);
    // Folder ids are never reused after a reopen.
    await reopened.prepare('next', '', {});
    expect((await readdir(join(root, 'snapshots'))).sort()).toEqual(['1', '2', '3', '4']);
  });

  it('opens even when a device cannot be attached now, and says why', async () => {
    const s = await Snapshotter.open(root, fakeDevices().devices);
    await rejectsWith(s.prepare('extract-1', '', dadiLabels('chain1', digest('a'))), 'ALREADY_EXISTS');
    await s.prepare('container', 'chain1', {});
    const failing: DeviceSet = {
      mount: async () => {
        throw new Error('registry unreachable');
      },
      umount: async () => {},
    };
    const said: string[] = [];
    const reopened = await Snapshotter.open(root, failing, { log: (m) => said.push(m) });
    expect(said).toEqual([
      'snapshot container: mounting 127.0.0.1:5000/app, 1 layers (snapshot chain1): registry unreachable',
    ]);
    await expect(reopened.mounts('container')).rejects.toThrow('registry unreachable');
  });

  it('refuses what containerd must not do: parents with children, duplicate keys, missing parents', async () => {
    const s = await Snapshotter.open(root, fakeDevices().devices);
    await s.prepare('a-extract', '', {});
    await s.commit('a', 'a-extract', {});
    await s.prepare('b', 'a', {});
    await rejectsWith(s.remove('a'), 'FAILED_PRECONDITION');
    await rejectsWith(s.prepare('b', 'a', {}), 'ALREADY_EXISTS');
    await rejectsWith(s.prepare('c', 'nope', {}), 'NOT_FOUND');
    await rejectsWith(s.prepare('d', 'b', {}), 'FAILED_PRECONDITION');
    await rejectsWith(s.mounts('a'), 'FAILED_PRECONDITION');
    await s.remove('b');
    await s.remove('a');
    expect(await s.walk([])).toEqual([]);
    expect(await readdir(join(root, 'snapshots'))).toEqual([]);
  });

  it('updates labels wholesale or by path; usage counts the snapshot folder', async () => {
    const s = await Snapshotter.open(root, fakeDevices().devices);
    const [m] = await s.prepare('a', '', { keep: '1', drop: '2' });
    await writeFile(join(m!.source, 'f'), Buffer.alloc(10000, 1));
    expect((await s.update('a', { add: '3' }, ['labels.add', 'labels.drop'])).labels).toEqual({ keep: '1', add: '3' });
    expect((await s.update('a', { only: '4' }, [])).labels).toEqual({ only: '4' });
    await rejectsWith(s.update('a', {}, ['parent']), 'INVALID_ARGUMENT');
    const u = await s.usage('a');
    expect(u.inodes).toBe(2);
    expect(u.size).toBeGreaterThanOrEqual(10000);
  });

  it('cleanup removes folders no snapshot owns', async () => {
    const s = await Snapshotter.open(root, fakeDevices().devices);
    await s.prepare('a', '', {});
    await mkdir(join(root, 'snapshots/99/fs'), { recursive: true });
    await s.cleanup();
    expect(await readdir(join(root, 'snapshots'))).toEqual(['1']);
  });

  it('a damaged metadata file is refused, naming it', async () => {
    await writeFile(join(root, 'metadata.json'), '{"version":1,');
    await expect(Snapshotter.open(root, fakeDevices().devices)).rejects.toThrow(/metadata\.json: not valid JSON/);
  });
});

describe('matchesFilters', () => {
  const info = {
    name: 'default/3/sha256:abc',
    parent: 'p',
    kind: 'COMMITTED' as const,
    createdAt: new Date(0),
    updatedAt: new Date(0),
    labels: { 'containerd.io/snapshot.ref': 'sha256:abc', x: 'y' },
  };
  it.each([
    [[], true],
    [['labels."containerd.io/snapshot.ref"==sha256:abc'], true],
    [['labels."containerd.io/snapshot.ref"==sha256:abd'], false],
    [['labels."containerd.io/snapshot.ref"==sha256:abc,parent==p'], true],
    [['labels."containerd.io/snapshot.ref"==sha256:abc,parent==q'], false],
    [['parent==q|name==default/3/sha256:abc'], true],
    [['kind==committed'], true],
    [['labels.x'], true],
    [['labels.z'], false],
    [['x!=y', 'labels.x!=y'], false],
    [['labels.x!="z"'], true],
  ] as Array<[string[], boolean]>)('%j → %s', (filters, want) => {
    expect(matchesFilters(info, filters)).toBe(want);
  });
});
