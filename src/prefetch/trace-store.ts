// Auto-trace's store on a host: traces recorded on an image's first start, one per manifest digest,
// as `<dir>/<hex>.trace` (the overlaybd trace file) plus `<hex>.json` (what image it belongs to).
// The daemon writes it (in its state folder); `dadi trace ls|push` read it. Written atomically.
// Not the recorder or the replayer.

import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DadiError } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import { withAtomicOutput } from '../util/atomic-output.js';
import { decodeTrace, encodeTrace, TRACE_HEADER_SIZE, TRACE_RECORD_SIZE, type TraceRecord } from './trace-format.js';

export interface StoredTraceInfo {
  /** The image's manifest digest (the key). */
  manifestDigest: string;
  /** `host/repo@sha256:…` of the image the trace was recorded on. */
  image: string;
  records: number;
  /** Bytes the recorded reads cover (with repeats). */
  bytes: number;
  recordedAt: string;
}

export class TraceStore {
  constructor(readonly dir: string) {}

  private paths(manifestDigest: string) {
    if (!isDigest(manifestDigest)) throw new DadiError('EINVAL', `trace store: ${manifestDigest} is not a digest`);
    const base = join(this.dir, manifestDigest.replace(':', '-'));
    return { trace: `${base}.trace`, info: `${base}.json` };
  }

  /** The stored trace of an image, undefined when none; a damaged one is an error naming its file. */
  async get(manifestDigest: string): Promise<TraceRecord[] | undefined> {
    const p = this.paths(manifestDigest);
    const bytes = await readFile(p.trace).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    return bytes && decodeTrace(bytes, p.trace);
  }

  /** The trace file's bytes (for publishing), or ENOTFOUND. */
  async bytes(manifestDigest: string): Promise<Uint8Array> {
    const p = this.paths(manifestDigest);
    return readFile(p.trace).catch(() => {
      throw new DadiError('ENOTFOUND', `no trace recorded for ${manifestDigest} (${p.trace})`);
    });
  }

  async has(manifestDigest: string): Promise<boolean> {
    return (await stat(this.paths(manifestDigest).trace).catch(() => undefined)) !== undefined;
  }

  /** Store (replace) the trace of an image. */
  async put(image: string, manifestDigest: string, records: readonly TraceRecord[]): Promise<StoredTraceInfo> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const p = this.paths(manifestDigest);
    const info: StoredTraceInfo = {
      manifestDigest,
      image,
      records: records.length,
      bytes: records.reduce((n, r) => n + r.count, 0),
      recordedAt: new Date().toISOString(),
    };
    const trace = encodeTrace(records);
    await withAtomicOutput(p.trace, {}, (out) => out.handle.writeFile(trace));
    await withAtomicOutput(p.info, {}, (out) => out.handle.writeFile(`${JSON.stringify(info, null, 2)}\n`));
    return info;
  }

  async remove(manifestDigest: string): Promise<void> {
    const p = this.paths(manifestDigest);
    await rm(p.trace, { force: true });
    await rm(p.info, { force: true });
  }

  /** Every stored trace, oldest first. */
  async list(): Promise<StoredTraceInfo[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const out: StoredTraceInfo[] = [];
    for (const n of names.filter((x) => x.endsWith('.json'))) {
      const info = JSON.parse(await readFile(join(this.dir, n), 'utf8')) as StoredTraceInfo;
      const size = (await stat(this.paths(info.manifestDigest).trace).catch(() => undefined))?.size;
      if (size === undefined || size !== TRACE_HEADER_SIZE + info.records * TRACE_RECORD_SIZE) continue;
      out.push(info);
    }
    return out.sort((a, b) => a.recordedAt.localeCompare(b.recordedAt));
  }
}
