// The overlaybd trace file (spec §6.2): a 24-byte header, then one 24-byte record per read of a
// lower layer's file. One encode/decode pair; the layout is the x86-64 struct the reference dumps.
// Not the recorder or the replayer (trace-recorder.ts, trace-replay.ts): bytes ⇄ records only.
//
//   header  0 u32 magic 0xC2EF1820 | 4 pad | 8 u64 data_size (24 × records) | 16 u32 checksum | 20 pad
//   record  0 u8 op 'R'            | 1 pad×3 | 4 u32 layer_index | 8 u64 count | 16 u64 offset
//
// checksum = CRC32C-raw over the record bytes as stored, in order, seed 0. Offsets and counts are
// bytes in the layer's uncompressed LSMT-file space (after tar and ZFile, before LSMT).

import { DadiError } from '../errors.js';
import { crc32cRaw } from '../util/crc32c.js';

/** CRC32 of "Container Image Trace Format" (LE bytes 20 18 EF C2). */
export const TRACE_MAGIC = 0xc2ef1820;
export const TRACE_HEADER_SIZE = 24;
export const TRACE_RECORD_SIZE = 24;
/** The op of a read record; 'W' exists in the reference's enum but is never recorded or replayed. */
export const TRACE_OP_READ = 0x52;
/** Records a trace may hold: far above a start-up's reads, and bounds what a hostile header allocates. */
export const MAX_TRACE_RECORDS = 1 << 20;
/** Largest byte count of one record (the LSMT's 4 MiB chunk, as the reference's reads are). */
export const MAX_TRACE_RECORD_BYTES = 4 << 20;

export interface TraceRecord {
  /** Index of the lower layer in the image, bottom = 0 (the acceleration layer excluded). */
  layer: number;
  /** Bytes from the start of the layer's uncompressed LSMT file. */
  offset: number;
  count: number;
}

/** Encode records as a trace file (padding zeroed, so the checksum is reproducible). */
export function encodeTrace(records: readonly TraceRecord[]): Uint8Array {
  if (records.length > MAX_TRACE_RECORDS) {
    throw new DadiError('ERANGE', `trace: ${records.length} records (at most ${MAX_TRACE_RECORDS})`);
  }
  const out = new Uint8Array(TRACE_HEADER_SIZE + records.length * TRACE_RECORD_SIZE);
  const view = new DataView(out.buffer);
  records.forEach((r, i) => {
    const at = TRACE_HEADER_SIZE + i * TRACE_RECORD_SIZE;
    out[at] = TRACE_OP_READ;
    view.setUint32(at + 4, r.layer, true);
    view.setBigUint64(at + 8, BigInt(r.count), true);
    view.setBigUint64(at + 16, BigInt(r.offset), true);
  });
  view.setUint32(0, TRACE_MAGIC, true);
  view.setBigUint64(8, BigInt(records.length * TRACE_RECORD_SIZE), true);
  view.setUint32(16, crc32cRaw(out.subarray(TRACE_HEADER_SIZE)), true);
  return out;
}

/** True when `head` starts with the trace magic (a binary trace, not a priority list of paths). */
export function isTrace(head: Uint8Array): boolean {
  return head.length >= 4 && new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) === TRACE_MAGIC;
}

/**
 * Decode and validate a trace file (spec §6.2): size = 24 + data_size, magic, record count bounded,
 * checksum. Records with another op are skipped, as the reference replays only reads. Errors are
 * DadiError EFORMAT / ERANGE / ECORRUPT naming `name`.
 */
export function decodeTrace(bytes: Uint8Array, name: string): TraceRecord[] {
  const bad = (code: 'EFORMAT' | 'ERANGE' | 'ECORRUPT', what: string) => new DadiError(code, `${name}: trace: ${what}`);
  if (bytes.length < TRACE_HEADER_SIZE) throw bad('EFORMAT', `${bytes.length} bytes is too small for the header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const magic = view.getUint32(0, true);
  if (magic !== TRACE_MAGIC) throw bad('EFORMAT', `bad magic 0x${magic.toString(16).padStart(8, '0')}`);
  const dataSize = view.getBigUint64(8, true);
  if (dataSize > BigInt(MAX_TRACE_RECORDS * TRACE_RECORD_SIZE)) {
    throw bad('ERANGE', `data_size ${dataSize} exceeds ${MAX_TRACE_RECORDS} records`);
  }
  const size = Number(dataSize);
  if (size % TRACE_RECORD_SIZE !== 0)
    throw bad('EFORMAT', `data_size ${size} is not a multiple of ${TRACE_RECORD_SIZE}`);
  if (bytes.length !== TRACE_HEADER_SIZE + size) {
    throw bad('EFORMAT', `file is ${bytes.length} bytes, header says ${TRACE_HEADER_SIZE + size}`);
  }
  const data = bytes.subarray(TRACE_HEADER_SIZE);
  const want = view.getUint32(16, true);
  const got = crc32cRaw(data);
  if (got !== want) {
    throw bad('ECORRUPT', `checksum 0x${got.toString(16)} does not match the header's 0x${want.toString(16)}`);
  }
  const out: TraceRecord[] = [];
  for (let at = TRACE_HEADER_SIZE; at < bytes.length; at += TRACE_RECORD_SIZE) {
    if (bytes[at] !== TRACE_OP_READ) continue;
    const count = view.getBigUint64(at + 8, true);
    const offset = view.getBigUint64(at + 16, true);
    const i = (at - TRACE_HEADER_SIZE) / TRACE_RECORD_SIZE;
    if (count > BigInt(MAX_TRACE_RECORD_BYTES)) throw bad('ERANGE', `record ${i}: count ${count} exceeds 4 MiB`);
    if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('ERANGE', `record ${i}: offset ${offset} is too large`);
    out.push({ layer: view.getUint32(at + 4, true), count: Number(count), offset: Number(offset) });
  }
  return out;
}
