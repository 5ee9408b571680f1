// The snapshotter's metadata: every snapshot (key, parent, kind, labels, and for DADI layers the
// registry blob it stands for) in one JSON file in the root folder, replaced atomically on every
// change so that a crash or a restart finds either the old or the new state, never half of one.
// Not the mounts: those are derived from this state (snapshotter.ts).

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DadiError } from '../errors.js';
import { writeFileAtomicSync } from '../util/atomic-output.js';

export type SnapshotKind = 'VIEW' | 'ACTIVE' | 'COMMITTED';

/** A DADI layer blob that a committed snapshot stands for; its data stays in the registry. */
export interface RemoteLayer {
  registry: string;
  repository: string;
  digest: string;
  size: number;
  /** The image's acceleration layer: its trace is replayed, it is never stacked. */
  acceleration?: true;
}

/** A container's own trace (the reference's record-trace labels): recorded into, or replayed from, a file. */
export interface SnapshotTrace {
  mode: 'record' | 'replay';
  path: string;
}

export interface SnapshotRecord {
  /** Folder name under `<root>/snapshots`. */
  id: string;
  key: string;
  parent?: string;
  kind: SnapshotKind;
  createdAt: string;
  updatedAt: string;
  labels: Record<string, string>;
  remote?: RemoteLayer;
  /** An active snapshot over DADI layers whose writes go to its own writable block layer (no overlayfs). */
  blockLayer?: boolean;
  /** An active snapshot over DADI layers with its own device, recording or replaying this trace. */
  trace?: SnapshotTrace;
}

interface StoreFile {
  version: 1;
  nextId: number;
  snapshots: SnapshotRecord[];
}

/** Bound on the metadata file we are willing to parse (about a million snapshots). */
const MAX_METADATA_BYTES = 512 * 1024 * 1024;

export class MetadataStore {
  private constructor(
    readonly path: string,
    private nextId: number,
    private readonly byKey: Map<string, SnapshotRecord>,
  ) {}

  static async open(root: string): Promise<MetadataStore> {
    const path = join(root, 'metadata.json');
    const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw new DadiError('EIO', `${path}: cannot read: ${e.message}`, { cause: e });
    });
    if (text === undefined) return new MetadataStore(path, 1, new Map());
    if (text.length > MAX_METADATA_BYTES) throw new DadiError('ERANGE', `${path}: metadata file too large`);
    let f: StoreFile;
    try {
      f = JSON.parse(text) as StoreFile;
    } catch (e) {
      throw new DadiError('EFORMAT', `${path}: not valid JSON: ${(e as Error).message}`);
    }
    if (f.version !== 1 || !Array.isArray(f.snapshots) || !Number.isSafeInteger(f.nextId)) {
      throw new DadiError('EFORMAT', `${path}: not a dadi snapshotter metadata file (version 1)`);
    }
    return new MetadataStore(path, f.nextId, new Map(f.snapshots.map((s) => [s.key, s])));
  }

  get(key: string): SnapshotRecord | undefined {
    return this.byKey.get(key);
  }

  all(): SnapshotRecord[] {
    return [...this.byKey.values()];
  }

  children(key: string): SnapshotRecord[] {
    return this.all().filter((s) => s.parent === key);
  }

  /** A fresh folder id (never reused, so a removed snapshot's leftovers cannot be mistaken). */
  newId(): string {
    return String(this.nextId++);
  }

  put(rec: SnapshotRecord): void {
    this.byKey.set(rec.key, rec);
  }

  delete(key: string): void {
    this.byKey.delete(key);
  }

  /**
   * Write the whole state atomically (temp file, fsync, rename), synchronously: a Prepare and a
   * pull's layer records wait for it on a container's start path, and the file is a few kilobytes.
   */
  async save(): Promise<void> {
    const body: StoreFile = { version: 1, nextId: this.nextId, snapshots: this.all() };
    writeFileAtomicSync(this.path, `${JSON.stringify(body, null, 1)}\n`);
  }
}
