// Pull-push (TOS 2023, our reading): a parent forwards each chunk it gets, whether fetched for its
// own read, for a trace replay or for one child, to every child that joined the blob and does not
// have it yet, before they ask. One host's prefetch thus warms its whole subtree, chunk by chunk
// as chunks arrive (FaaSNet-style streaming). Pure logic: the agent sends the pushes this returns.
//
// Each child has a window of `window` pushes in flight; more wait in order. A child that asked for
// a chunk, or was pushed it, is known to have it. A child not heard from for `idleMs` is dropped.
//
//   const p = new PushPlanner({ window: 4, idleMs: 60_000 });
//   p.joined('sha256:…', 'h7', now);               // a child announced itself (or asked for a chunk)
//   for (const o of p.arrived('sha256:…', 12, now)) send(o);   // { blob, child, chunk }
//   for (const o of p.done(order, ok, now)) send(o);           // a push finished: more may start

import type { HostId } from './tracker.js';

export interface PushOrder {
  blob: string;
  child: HostId;
  chunk: number;
}

export interface PushOptions {
  /** Pushes in flight per child. */
  window: number;
  /** A child silent for this long is no longer pushed to. */
  idleMs: number;
  /** Queued pushes per child beyond which the oldest are dropped (the child will pull them). */
  maxQueue?: number;
}

interface Child {
  has: Set<number>;
  inFlight: Set<number>;
  queue: number[];
  lastSeen: number;
}

export class PushPlanner {
  private readonly blobs = new Map<string, Map<HostId, Child>>();
  private readonly window: number;
  private readonly idleMs: number;
  private readonly maxQueue: number;

  constructor(options: PushOptions) {
    this.window = Math.max(1, options.window);
    this.idleMs = options.idleMs;
    this.maxQueue = options.maxQueue ?? 4096;
  }

  /** `child` joined the blob under this host (or was heard from again). */
  joined(blob: string, child: HostId, now: number): void {
    let children = this.blobs.get(blob);
    if (!children) {
      children = new Map();
      this.blobs.set(blob, children);
    }
    const c = children.get(child);
    if (c) c.lastSeen = Math.max(c.lastSeen, now);
    else children.set(child, { has: new Set(), inFlight: new Set(), queue: [], lastSeen: now });
  }

  /** `child` asked for `chunk` (so it will have it): never push it that one. */
  requested(blob: string, child: HostId, chunk: number, now: number): void {
    this.joined(blob, child, now);
    const c = this.blobs.get(blob)!.get(child)!;
    c.has.add(chunk);
    const q = c.queue.indexOf(chunk);
    if (q >= 0) c.queue.splice(q, 1);
  }

  /** `child` left, or is gone: no more pushes to it. */
  left(blob: string, child: HostId): void {
    const children = this.blobs.get(blob);
    children?.delete(child);
    if (children?.size === 0) this.blobs.delete(blob);
  }

  /** This host now holds `chunk`: the pushes to start now (others are queued). */
  arrived(blob: string, chunk: number, now: number): PushOrder[] {
    const children = this.blobs.get(blob);
    if (!children) return [];
    const out: PushOrder[] = [];
    for (const [id, c] of [...children]) {
      if (now - c.lastSeen >= this.idleMs) {
        children.delete(id);
        continue;
      }
      if (c.has.has(chunk) || c.inFlight.has(chunk) || c.queue.includes(chunk)) continue;
      if (c.inFlight.size < this.window) {
        c.inFlight.add(chunk);
        out.push({ blob, child: id, chunk });
      } else {
        c.queue.push(chunk);
        if (c.queue.length > this.maxQueue) c.queue.shift();
      }
    }
    return out;
  }

  /** A push ended (`ok`: the child kept it). Returns the next pushes for that child. */
  done(order: PushOrder, ok: boolean, now: number): PushOrder[] {
    const c = this.blobs.get(order.blob)?.get(order.child);
    if (!c) return [];
    c.inFlight.delete(order.chunk);
    if (ok) {
      c.has.add(order.chunk);
      c.lastSeen = Math.max(c.lastSeen, now);
    } else {
      // A child that failed a push is left to pull: drop what was queued for it.
      c.queue.length = 0;
      return [];
    }
    const out: PushOrder[] = [];
    while (c.inFlight.size < this.window && c.queue.length > 0) {
      const chunk = c.queue.shift()!;
      if (c.has.has(chunk)) continue;
      c.inFlight.add(chunk);
      out.push({ blob: order.blob, child: order.child, chunk });
    }
    return out;
  }

  /** Children of the blob this host pushes to. */
  children(blob: string): HostId[] {
    return [...(this.blobs.get(blob)?.keys() ?? [])];
  }
}
