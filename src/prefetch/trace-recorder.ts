// Trace recording (spec §6.3): a BlockFile wrapper on each lower layer's uncompressed LSMT file
// that notes every successful full-length read as a trace record, in the order reads complete.
// src/image puts the wrapper in the stack (openLayerStack's `record` option); this module only
// keeps the records. Not the file writer: encode them with trace-format.ts.

import type { BlockFile } from '../blockfile/blockfile.js';
import { observeReads } from '../blockfile/observed.js';
import { MAX_TRACE_RECORD_BYTES, MAX_TRACE_RECORDS, type TraceRecord } from './trace-format.js';

export class TraceRecorder {
  private readonly list: TraceRecord[] = [];
  /** Reads not recorded because the trace was full (MAX_TRACE_RECORDS). */
  dropped = 0;
  private stopped = false;

  /** Wrap layer `layer`'s LSMT file (0 = bottom) so that its reads are recorded. */
  wrap(file: BlockFile, layer: number): BlockFile {
    // As the reference: only reads that returned everything asked for.
    return observeReads(file, (offset, n, requested) => {
      if (n === requested) this.note(layer, offset, n);
    });
  }

  /** Note a read (what the wrappers call). Reads over 4 MiB are split as a replay would read them. */
  note(layer: number, offset: number, count: number): void {
    if (this.stopped || count <= 0) return;
    for (let at = 0; at < count; at += MAX_TRACE_RECORD_BYTES) {
      if (this.list.length >= MAX_TRACE_RECORDS) {
        this.dropped++;
        return;
      }
      this.list.push({ layer, offset: offset + at, count: Math.min(MAX_TRACE_RECORD_BYTES, count - at) });
    }
  }

  /** Stop recording (reads after this are not noted). */
  stop(): void {
    this.stopped = true;
  }

  /** The records so far, in order. */
  records(): readonly TraceRecord[] {
    return this.list;
  }
}
