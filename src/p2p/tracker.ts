// The tracker the root keeps: which hosts joined which blob, and each host's place in that blob's
// tree. Pure logic (no I/O, no clock: `now` is passed in, randomness injected), so the root's HTTP
// server and the scale simulator drive the same code. Not the chunk data path (schedule.ts) nor
// the push decisions (push.ts).
//
// The tree of a blob: the root on top (depth 0), every joined host under exactly one parent, at
// most `fanout` children per host per blob (`rootFanout` under the root). A joining host goes to
// the shallowest parent with a free slot, so depth stays about log_k N; among equally shallow
// parents it prefers hosts that hold the whole blob, then the most spare upload (children over all
// trees ÷ the host's declared `upload` capacity), then fewer slow reports, then chance.
//
//   const t = new Tracker({ fanout: 4, random: seededRandom(1) });
//   const p = t.join('sha256:…', { id: 'h1', address: 'http://10.0.0.1:19145' }, now);
//   p.path        // ancestors nearest first; [] = fetch from the root itself
//   t.report('sha256:…', 'h1', p.path[0].id, 'gone', now)  // → a new placement for h1
//   t.expire(now) // hosts not seen for `idleMs` leave their trees
//
// Re-parenting: a report moves the reporter (with its subtree) under another parent. 'slow' makes
// the reporter avoid that peer in that blob; 'gone' removes the peer from every tree; 'corrupt'
// (a chunk failed verification) distrusts the peer: it never parents anyone again and its children
// are re-placed at once. Orphans are re-placed immediately; their agents learn the new parent when
// they next join or report. When no host has a free slot the root takes the host directly (it can
// always serve).

import { DadiError } from '../errors.js';
import { pick, type Random } from './random.js';

export type HostId = string;

export interface HostInfo {
  id: HostId;
  /** Base URL of the host's agent, for its children. */
  address: string;
  /** Relative upload capacity (default 1): a host with 2 takes twice the children of one with 1. */
  upload?: number;
}

export interface HostRef {
  id: HostId;
  address: string;
}

export interface Placement {
  blob: string;
  host: HostId;
  /** Ancestors nearest first (parent, grandparent, …); empty when the host hangs under the root. */
  path: HostRef[];
}

export type PeerProblem = 'slow' | 'gone' | 'corrupt';

export interface TrackerOptions {
  /** Children per host per blob (k). */
  fanout: number;
  /** Children of the root per blob; default `fanout`. */
  rootFanout?: number;
  /** A host not seen (join or report) in a blob for this long leaves its tree; default 60 s. */
  idleMs?: number;
  random: Random;
}

interface Member {
  host: HostId;
  parent: HostId | null;
  children: Set<HostId>;
  lastSeen: number;
  complete: boolean;
  /** Peers this host reported slow in this blob: never its parent again. */
  avoid: Set<HostId>;
  /**
   * 1 under the root, parent's + 1 below; kept on every move (attach, detach) for its whole
   * subtree, so choosing a parent reads it instead of walking up from each member of the tree (that
   * walk was half of the root's CPU per join at 2,000 hosts). A detached member counts as 1.
   */
  depth: number;
}

interface Host {
  info: HostInfo;
  /** Children over all trees. */
  load: number;
  slowReports: number;
  distrusted: boolean;
  blobs: Set<string>;
}

interface Tree {
  members: Map<HostId, Member>;
  rootChildren: Set<HostId>;
}

/** Bound on a blob's tree, so a flood of joins cannot grow the root's memory without limit. */
export const MAX_TREE_HOSTS = 100_000;

export class Tracker {
  private readonly trees = new Map<string, Tree>();
  private readonly hosts = new Map<HostId, Host>();
  private readonly fanout: number;
  private readonly rootFanout: number;
  private readonly idleMs: number;
  private readonly random: Random;

  constructor(options: TrackerOptions) {
    if (!Number.isSafeInteger(options.fanout) || options.fanout < 1) {
      throw new DadiError('EINVAL', `p2p fan-out must be a positive integer, got ${options.fanout}`);
    }
    this.fanout = options.fanout;
    this.rootFanout = options.rootFanout ?? options.fanout;
    if (!Number.isSafeInteger(this.rootFanout) || this.rootFanout < 1) {
      throw new DadiError('EINVAL', `p2p root fan-out must be a positive integer, got ${this.rootFanout}`);
    }
    this.idleMs = options.idleMs ?? 60_000;
    this.random = options.random;
  }

  /**
   * Add `host` to the blob's tree, or refresh it (seen now, address updated) when it is in already.
   * Returns where it hangs.
   */
  join(blob: string, host: HostInfo, now: number): Placement {
    const upload = host.upload ?? 1;
    if (!(upload > 0) || !Number.isFinite(upload)) {
      throw new DadiError('EINVAL', `host ${host.id}: upload capacity must be a positive number, got ${upload}`);
    }
    const h = this.hosts.get(host.id);
    if (h) h.info = { ...host };
    else this.hosts.set(host.id, { info: { ...host }, load: 0, slowReports: 0, distrusted: false, blobs: new Set() });
    let tree = this.trees.get(blob);
    if (!tree) {
      tree = { members: new Map(), rootChildren: new Set() };
      this.trees.set(blob, tree);
    }
    let m = tree.members.get(host.id);
    if (!m) {
      if (tree.members.size >= MAX_TREE_HOSTS) {
        throw new DadiError('ERANGE', `blob ${blob}: tree already holds ${MAX_TREE_HOSTS} hosts`);
      }
      m = {
        host: host.id,
        parent: null,
        children: new Set(),
        lastSeen: now,
        complete: false,
        avoid: new Set(),
        depth: 1,
      };
      tree.members.set(host.id, m);
      this.hosts.get(host.id)!.blobs.add(blob);
      this.attach(tree, m, this.chooseParent(tree, m));
    }
    m.lastSeen = Math.max(m.lastSeen, now);
    return this.placementOf(blob, tree, m);
  }

  /** Where `host` hangs in the blob's tree, or undefined when it has not joined. */
  placement(blob: string, host: HostId): Placement | undefined {
    const tree = this.trees.get(blob);
    const m = tree?.members.get(host);
    return tree && m ? this.placementOf(blob, tree, m) : undefined;
  }

  /** The children of `host` (null: the root) in the blob's tree. */
  children(blob: string, host: HostId | null): HostRef[] {
    const tree = this.trees.get(blob);
    if (!tree) return [];
    const ids = host === null ? tree.rootChildren : (tree.members.get(host)?.children ?? new Set<HostId>());
    return [...ids].map((id) => this.ref(id));
  }

  /** Mark that `host` now holds every chunk of the blob: a preferred parent from now on. */
  holds(blob: string, host: HostId, now: number): void {
    const m = this.trees.get(blob)?.members.get(host);
    if (!m) return;
    m.complete = true;
    m.lastSeen = Math.max(m.lastSeen, now);
  }

  /**
   * `reporter` had a problem with `peer` (its parent, or an ancestor it walked up to) in this blob.
   * Applies the problem (see the module comment) and returns the reporter's placement afterwards.
   */
  report(blob: string, reporter: HostId, peer: HostId, problem: PeerProblem, now: number): Placement {
    const tree = this.trees.get(blob);
    const m = tree?.members.get(reporter);
    if (!tree || !m) throw new DadiError('ENOTFOUND', `host ${reporter} has not joined blob ${blob}`);
    m.lastSeen = Math.max(m.lastSeen, now);
    if (peer === reporter) return this.placementOf(blob, tree, m);
    const p = this.hosts.get(peer);
    if (problem === 'gone') {
      this.removeHost(peer);
    } else if (problem === 'corrupt') {
      if (p) this.distrust(p);
    } else {
      m.avoid.add(peer);
      if (p) p.slowReports++;
      if (this.hasAncestor(tree, m, peer)) this.replace(tree, m);
    }
    return this.placementOf(blob, tree, m);
  }

  /** `host` left the blob (it closed it): its children are re-placed. */
  leave(blob: string, host: HostId): void {
    const tree = this.trees.get(blob);
    const m = tree?.members.get(host);
    if (!tree || !m) return;
    this.removeMember(blob, tree, m);
  }

  /** `host` is gone: it leaves every tree, its children everywhere are re-placed. */
  removeHost(host: HostId): void {
    const h = this.hosts.get(host);
    if (!h) return;
    for (const blob of [...h.blobs]) {
      const tree = this.trees.get(blob)!;
      this.removeMember(blob, tree, tree.members.get(host)!);
    }
    this.hosts.delete(host);
  }

  /** Remove every member not seen for `idleMs`; returns how many left. */
  expire(now: number): number {
    let removed = 0;
    for (const [blob, tree] of [...this.trees]) {
      for (const m of [...tree.members.values()]) {
        if (now - m.lastSeen >= this.idleMs && tree.members.get(m.host) === m) {
          this.removeMember(blob, tree, m);
          removed++;
        }
      }
    }
    for (const [id, h] of [...this.hosts]) if (h.blobs.size === 0 && !h.distrusted) this.hosts.delete(id);
    return removed;
  }

  /** Hosts in the blob's tree. */
  size(blob: string): number {
    return this.trees.get(blob)?.members.size ?? 0;
  }

  /** Blobs with at least one host. */
  blobs(): string[] {
    return [...this.trees.keys()];
  }

  /** Children of `host` over all trees. */
  load(host: HostId): number {
    return this.hosts.get(host)?.load ?? 0;
  }

  /** Whether a peer was blamed for wrong bytes. */
  distrusted(host: HostId): boolean {
    return this.hosts.get(host)?.distrusted ?? false;
  }

  /** Depth of `host` in the blob's tree (1 = under the root), or 0 when it has not joined. */
  depth(blob: string, host: HostId): number {
    const p = this.placement(blob, host);
    return p ? p.path.length + 1 : 0;
  }

  private ref(id: HostId): HostRef {
    const h = this.hosts.get(id)!;
    return { id, address: h.info.address };
  }

  private placementOf(blob: string, tree: Tree, m: Member): Placement {
    const path: HostRef[] = [];
    let p = m.parent;
    // Bounded by the tree's size: the tree has no cycles (a host is never placed under its own subtree).
    for (let i = 0; p !== null && i < tree.members.size; i++) {
      path.push(this.ref(p));
      p = tree.members.get(p)!.parent;
    }
    return { blob, host: m.host, path };
  }

  /** Set `m`'s depth to `d` and its descendants' to match. */
  private setDepth(tree: Tree, m: Member, d: number): void {
    if (m.depth === d) return;
    m.depth = d;
    const todo = [m];
    // Bounded by the tree's size: the tree has no cycles.
    for (let i = 0; todo.length > 0 && i < tree.members.size; i++) {
      const p = todo.pop()!;
      for (const c of p.children) {
        const cm = tree.members.get(c)!;
        cm.depth = p.depth + 1;
        todo.push(cm);
      }
    }
  }

  private hasAncestor(tree: Tree, m: Member, id: HostId): boolean {
    let p = m.parent;
    for (let i = 0; p !== null && i < tree.members.size; i++) {
      if (p === id) return true;
      p = tree.members.get(p)!.parent;
    }
    return false;
  }

  private subtree(tree: Tree, m: Member): Set<HostId> {
    const seen = new Set<HostId>([m.host]);
    const todo = [m];
    while (todo.length > 0) {
      for (const c of todo.pop()!.children) {
        if (!seen.has(c)) {
          seen.add(c);
          todo.push(tree.members.get(c)!);
        }
      }
    }
    return seen;
  }

  /** The best parent for `m` (null: the root), never inside its own subtree. */
  private chooseParent(tree: Tree, m: Member, pending?: Set<HostId>): HostId | null {
    if (tree.rootChildren.size < this.rootFanout && !tree.rootChildren.has(m.host)) return null;
    // A new member has no subtree: skip the walk (and its set) for the common case, a join.
    const own = m.children.size > 0 ? this.subtree(tree, m) : undefined;
    const best: Member[] = [];
    // The best key so far: depth, then complete first, then load per upload, then fewer slow reports.
    let bDepth = 0;
    let bIncomplete = 0;
    let bLoad = 0;
    let bSlow = 0;
    for (const c of tree.members.values()) {
      if (
        c.children.size >= this.fanout ||
        c === m ||
        own?.has(c.host) ||
        m.avoid.has(c.host) ||
        pending?.has(c.host)
      ) {
        continue;
      }
      // Deeper than the best so far: no need to look further at it.
      if (best.length > 0 && c.depth > bDepth) continue;
      const h = this.hosts.get(c.host)!;
      if (h.distrusted) continue;
      const incomplete = c.complete ? 0 : 1;
      const load = h.load / (h.info.upload ?? 1);
      const slow = h.slowReports;
      const cmp = best.length === 0 ? -1 : c.depth - bDepth || incomplete - bIncomplete || load - bLoad || slow - bSlow;
      if (cmp < 0) {
        best.length = 0;
        best.push(c);
        bDepth = c.depth;
        bIncomplete = incomplete;
        bLoad = load;
        bSlow = slow;
      } else if (cmp === 0) best.push(c);
    }
    if (best.length === 0) return null;
    return pick(best, this.random).host;
  }

  private attach(tree: Tree, m: Member, parent: HostId | null): void {
    m.parent = parent;
    if (parent === null) {
      tree.rootChildren.add(m.host);
      this.setDepth(tree, m, 1);
    } else {
      const p = tree.members.get(parent)!;
      p.children.add(m.host);
      this.hosts.get(parent)!.load++;
      this.setDepth(tree, m, p.depth + 1);
    }
  }

  private detach(tree: Tree, m: Member): void {
    if (m.parent === null) tree.rootChildren.delete(m.host);
    else {
      tree.members.get(m.parent)!.children.delete(m.host);
      this.hosts.get(m.parent)!.load--;
    }
    m.parent = null;
    this.setDepth(tree, m, 1);
  }

  /** Move `m` (with its subtree) under the best other parent. */
  private replace(tree: Tree, m: Member): void {
    this.detach(tree, m);
    this.attach(tree, m, this.chooseParent(tree, m));
  }

  private removeMember(blob: string, tree: Tree, m: Member): void {
    const orphans = [...m.children].map((id) => tree.members.get(id)!);
    for (const o of orphans) this.detach(tree, o);
    this.detach(tree, m);
    tree.members.delete(m.host);
    this.hosts.get(m.host)?.blobs.delete(blob);
    // Orphans not yet re-placed have no depth: keep them out of each other's choices.
    const pending = new Set(orphans.map((o) => o.host));
    for (const o of orphans) {
      pending.delete(o.host);
      this.attach(tree, o, this.chooseParent(tree, o, pending));
    }
    if (tree.members.size === 0) this.trees.delete(blob);
  }

  private distrust(h: Host): void {
    h.distrusted = true;
    for (const blob of h.blobs) {
      const tree = this.trees.get(blob)!;
      const m = tree.members.get(h.info.id)!;
      // Each child is taken out before it is re-placed, so none can pick the distrusted host again.
      for (const id of [...m.children]) this.replace(tree, tree.members.get(id)!);
    }
  }
}
