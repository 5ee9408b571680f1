// TarWrapWriter: a Sink that wraps everything written into it as the single member of a tar, byte
// for byte like overlaybd's `-t` (spec §4 write side). Not a general tar writer.
//
// Layout: [PAX header "overlaybd.pax"][PAX record "<len> size=<n>\n"][ustar header "overlaybd.commit"]
// [payload from 1536][zero padding to 512][two zero blocks]. While streaming, the first 1536 bytes are
// a placeholder (member "overlaybd.new", magic "xxtar", version "xx"); end() rewrites them.

import type { Sink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { encodeTarHeader, formatPaxRecord, octal, octalNoNul, TAR_BLOCK, TarTypeflag } from './header.js';

/** Where the payload starts: PAX header, its one-block record, the member header. */
export const TAR_WRAP_PAYLOAD_OFFSET = 3 * TAR_BLOCK;

export interface TarWrapOptions {
  /** The member's mode field: the reference writes the output file's st_mode. Default 0o100644. */
  mode?: number;
  /** uname / gname: the reference writes the names of uid/gid 0. Default 'root'. */
  uname?: string;
  gname?: string;
}

export class TarWrapWriter implements Sink {
  readonly name: string;
  private payload = 0;
  private started = false;
  private ended = false;
  private readonly pwriteInner: (chunk: Uint8Array, offset: number) => Promise<void>;

  constructor(
    private readonly inner: Sink,
    private readonly opts: TarWrapOptions = {},
  ) {
    if (!inner.pwrite) throw new DadiError('EINVAL', `${inner.name}: the tar wrapper needs a sink that can pwrite`);
    this.pwriteInner = inner.pwrite.bind(inner);
    this.name = `tar into ${inner.name}`;
  }

  /** Payload bytes written so far. */
  get position(): number {
    return this.payload;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.ended) throw new DadiError('EINVAL', `${this.name}: write after end`);
    await this.start();
    if (chunk.length === 0) return;
    await this.inner.write(chunk);
    this.payload += chunk.length;
  }

  /** Overwrite payload bytes at `offset` (payload-relative), e.g. a ZFile header rewrite. */
  async pwrite(chunk: Uint8Array, offset: number): Promise<void> {
    if (offset < 0 || offset + chunk.length > this.payload) {
      throw new DadiError(
        'ERANGE',
        `${this.name}: pwrite ${offset}+${chunk.length} past the payload end (${this.payload})`,
      );
    }
    await this.pwriteInner(chunk, offset + TAR_WRAP_PAYLOAD_OFFSET);
  }

  /** Pad, write the end-of-archive blocks, rewrite the real headers, then end the inner sink. */
  async end(): Promise<void> {
    if (this.ended) return;
    await this.start();
    this.ended = true;
    const pad = (TAR_BLOCK - (this.payload % TAR_BLOCK)) % TAR_BLOCK;
    await this.inner.write(new Uint8Array(pad + 2 * TAR_BLOCK));
    await this.pwriteInner(finalHeaders(this.payload, this.opts), 0);
    await this.inner.end();
  }

  private async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.inner.write(placeholderHeaders());
  }
}

/** The three blocks written while the payload streams (reference `mark_new_tar`). */
export function placeholderHeaders(): Uint8Array {
  const record = formatPaxRecord('size', '0');
  const out = new Uint8Array(TAR_WRAP_PAYLOAD_OFFSET);
  out.set(
    encodeTarHeader(
      { typeflag: TarTypeflag.PAX, name: 'overlaybd.pax', size: octalNoNul(record.length, 12) },
      { checksum: false },
    ),
    0,
  );
  out.set(new TextEncoder().encode(record), TAR_BLOCK);
  out.set(
    encodeTarHeader(
      { name: 'overlaybd.new', version: 'xx', magic: 'xxtar', size: octalNoNul(0, 12) },
      { checksum: false },
    ),
    2 * TAR_BLOCK,
  );
  return out;
}

/** The final three blocks (reference `write_header_trailer`). */
export function finalHeaders(payloadSize: number, opts: TarWrapOptions = {}): Uint8Array {
  const record = formatPaxRecord('size', String(payloadSize));
  if (record.length > TAR_BLOCK) throw new DadiError('EINVAL', `tar: PAX record too long (${record.length})`);
  const ustar = { version: '00', magic: 'ustar' };
  const out = new Uint8Array(TAR_WRAP_PAYLOAD_OFFSET);
  out.set(
    encodeTarHeader(
      { typeflag: TarTypeflag.PAX, name: 'overlaybd.pax', size: octalNoNul(record.length, 12), ...ustar },
      { checksum: true },
    ),
    0,
  );
  out.set(new TextEncoder().encode(record), TAR_BLOCK);
  out.set(
    encodeTarHeader(
      {
        typeflag: TarTypeflag.REGULAR,
        name: 'overlaybd.commit',
        mode: octal(opts.mode ?? 0o100644, 8),
        uid: octal(0, 8),
        gid: octal(0, 8),
        size: octalNoNul(0, 12),
        mtime: octalNoNul(0, 12),
        uname: (opts.uname ?? 'root').slice(0, 31),
        gname: (opts.gname ?? 'root').slice(0, 31),
        ...ustar,
      },
      { checksum: true },
    ),
    2 * TAR_BLOCK,
  );
  return out;
}
