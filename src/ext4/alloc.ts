// Block and inode allocation over the on-disk bitmaps (through the block cache), keeping the
// group descriptors' free/dir counters exact. Allocation is first-fit forward from a cursor, so a
// fresh filesystem fills contiguously; nothing here knows about files or directories.

import { DadiError } from '../errors.js';
import { BLOCKS_PER_GROUP, type Geometry, groupBlocks } from './geometry.js';
import type { GroupDesc } from './layout.js';
import type { MetadataBlockCache } from './metadata-cache.js';

export class Allocator {
  private blockCursor = 0;
  private inodeCursor = 0;
  freeBlocks: number;
  freeInodes: number;

  constructor(
    private readonly cache: MetadataBlockCache,
    readonly groups: GroupDesc[],
    private readonly geo: Geometry,
    private readonly name: string,
  ) {
    this.freeBlocks = groups.reduce((s, g) => s + g.freeBlocks, 0);
    this.freeInodes = groups.reduce((s, g) => s + g.freeInodes, 0);
    const firstWithSpace = groups.findIndex((g) => g.freeBlocks > 0);
    this.blockCursor = Math.max(0, firstWithSpace) * BLOCKS_PER_GROUP;
  }

  /** Groups whose descriptor changed since the last `takeDirtyGroups`. */
  private readonly dirtyGroups = new Set<number>();
  takeDirtyGroups(): Set<number> {
    const s = new Set(this.dirtyGroups);
    this.dirtyGroups.clear();
    return s;
  }

  /** Move the block cursor (the goal of the next allocation). */
  setGoal(blk: number): void {
    if (blk >= 0 && blk < this.geo.blocksCount) this.blockCursor = blk;
  }

  /**
   * Allocate one run of up to `max` blocks, first-fit from the cursor (wrapping once).
   * Returns [start, length].
   */
  async allocRun(max: number): Promise<[number, number]> {
    if (this.freeBlocks <= 0) throw new DadiError('ERANGE', `${this.name}: no free blocks left`);
    const startGroup = Math.floor(this.blockCursor / BLOCKS_PER_GROUP);
    for (let i = 0; i <= this.geo.groupCount; i++) {
      const g = (startGroup + i) % this.geo.groupCount;
      const gd = this.groups[g]!;
      if (gd.freeBlocks === 0) continue;
      const from = i === 0 ? this.blockCursor - g * BLOCKS_PER_GROUP : 0;
      const n = groupBlocks(this.geo, g);
      const bm = await this.cache.get(gd.blockBitmap);
      const s = findZero(bm, from, n);
      if (s < 0) continue;
      let e = s + 1;
      while (e < n && e - s < max && !(bm[e >> 3]! & (1 << (e & 7)))) e++;
      const w = await this.cache.modify(gd.blockBitmap);
      for (let b = s; b < e; b++) w[b >> 3]! |= 1 << (b & 7);
      const len = e - s;
      gd.freeBlocks -= len;
      this.freeBlocks -= len;
      this.dirtyGroups.add(g);
      const start = g * BLOCKS_PER_GROUP + s;
      this.blockCursor = start + len;
      return [start, len];
    }
    throw new DadiError('ERANGE', `${this.name}: no free blocks left (bitmaps disagree with counters)`);
  }

  /** Allocate `count` blocks (possibly in several runs). */
  async allocBlocks(count: number): Promise<number[]> {
    const out: number[] = [];
    while (out.length < count) {
      const [s, l] = await this.allocRun(count - out.length);
      for (let i = 0; i < l; i++) out.push(s + i);
    }
    return out;
  }

  async freeRun(start: number, len: number): Promise<void> {
    let b = start;
    const end = start + len;
    while (b < end) {
      const g = Math.floor(b / BLOCKS_PER_GROUP);
      const gEnd = Math.min(end, (g + 1) * BLOCKS_PER_GROUP);
      const gd = this.groups[g];
      if (!gd) throw new DadiError('ECORRUPT', `${this.name}: freeing block ${b} past the end`);
      const w = await this.cache.modify(gd.blockBitmap);
      for (let x = b; x < gEnd; x++) {
        const o = x - g * BLOCKS_PER_GROUP;
        if (!(w[o >> 3]! & (1 << (o & 7)))) throw new DadiError('ECORRUPT', `${this.name}: block ${x} freed twice`);
        w[o >> 3]! &= ~(1 << (o & 7));
        this.cache.drop(x);
      }
      gd.freeBlocks += gEnd - b;
      this.freeBlocks += gEnd - b;
      this.dirtyGroups.add(g);
      b = gEnd;
    }
  }

  async allocInode(isDir: boolean): Promise<number> {
    if (this.freeInodes <= 0) throw new DadiError('ERANGE', `${this.name}: no free inodes left`);
    const ipg = this.geo.inodesPerGroup;
    const startGroup = Math.floor(this.inodeCursor / ipg);
    for (let i = 0; i <= this.geo.groupCount; i++) {
      const g = (startGroup + i) % this.geo.groupCount;
      const gd = this.groups[g]!;
      if (gd.freeInodes === 0) continue;
      const bm = await this.cache.get(gd.inodeBitmap);
      const s = findZero(bm, i === 0 ? this.inodeCursor - g * ipg : 0, ipg);
      if (s < 0) continue;
      const w = await this.cache.modify(gd.inodeBitmap);
      w[s >> 3]! |= 1 << (s & 7);
      gd.freeInodes--;
      if (isDir) gd.usedDirs++;
      this.freeInodes--;
      this.dirtyGroups.add(g);
      this.inodeCursor = g * ipg + s + 1;
      return g * ipg + s + 1;
    }
    throw new DadiError('ERANGE', `${this.name}: no free inodes left (bitmaps disagree with counters)`);
  }

  async freeInode(ino: number, isDir: boolean): Promise<void> {
    const ipg = this.geo.inodesPerGroup;
    const g = Math.floor((ino - 1) / ipg);
    const o = (ino - 1) % ipg;
    const gd = this.groups[g]!;
    const w = await this.cache.modify(gd.inodeBitmap);
    if (!(w[o >> 3]! & (1 << (o & 7)))) throw new DadiError('ECORRUPT', `${this.name}: inode ${ino} freed twice`);
    w[o >> 3]! &= ~(1 << (o & 7));
    gd.freeInodes++;
    if (isDir) gd.usedDirs--;
    this.freeInodes++;
    this.dirtyGroups.add(g);
  }
}

/** First clear bit in [from, limit), or -1. */
function findZero(bm: Uint8Array, from: number, limit: number): number {
  let i = from;
  while (i < limit) {
    if ((i & 7) === 0 && bm[i >> 3] === 0xff) {
      i += 8;
      continue;
    }
    if (!(bm[i >> 3]! & (1 << (i & 7)))) return i;
    i++;
  }
  return -1;
}
