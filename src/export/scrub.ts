// Clean a state folder whose daemon is gone: what it left mounted, attached or exported.
// Policy-free helpers (system.ts, loop.ts) do the work; this decides the order (deepest first).

import { resolve } from 'node:path';
import { detachLoop, loopDevicesUnder } from './loop.js';
import { forceUnmountFuse, readMounts, runProgram } from './system.js';

/** How long (× 50 ms) a scrub waits for the kernel to release loop devices it detached. */
const LOOP_RELEASE_POLLS = 200;

/**
 * Remove device leftovers under a state folder whose daemon is gone: filesystems mounted under it
 * (container rootfs, overlays), filesystems mounted from loop devices backed by files under it,
 * those loop devices, and FUSE mounts under it (aborted first: their server is dead). Never call it
 * while a daemon serves that folder. Returns what it removed.
 */
export async function scrubDevices(stateDir: string): Promise<string[]> {
  const root = resolve(stateDir);
  const done: string[] = [];
  const under = (p: string) => p === root || p.startsWith(`${root}/`);
  const loops = await loopDevicesUnder(root);
  const mounts = await readMounts();
  const doomed = mounts.filter(
    (m) => !m.fsType.startsWith('fuse') && (under(m.mountPoint) || loops.includes(m.source)),
  );
  // Deepest first.
  for (const m of doomed.sort((a, b) => b.mountPoint.length - a.mountPoint.length)) {
    const r = await runProgram('umount', ['-l', m.mountPoint], { timeoutMs: 30_000 });
    if (r.code === 0) done.push(`umount ${m.mountPoint}`);
  }
  for (const dev of loops) {
    await detachLoop(dev).catch(() => {});
    done.push(`losetup -d ${dev}`);
  }
  // A loop device still held by a lazily unmounted filesystem is only marked for detach
  // (autoclear): the kernel lets it go once that filesystem is really gone, which under load
  // comes after `losetup -d` returned. Wait for that, bounded, so callers see a clean folder.
  for (let i = 0; i < LOOP_RELEASE_POLLS && loops.length > 0; i++) {
    const still = await loopDevicesUnder(root);
    if (!loops.some((d) => still.includes(d))) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const m of (await readMounts()).filter((m) => m.fsType.startsWith('fuse') && under(m.mountPoint))) {
    await forceUnmountFuse(m.mountPoint);
    done.push(`umount FUSE ${m.mountPoint}`);
  }
  return done;
}
