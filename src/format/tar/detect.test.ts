import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../../test/fixtures.js';
import { mutate, rng } from '../../../test/mutate.js';
import { checkTar, tarTargets } from '../../../test/tar-fuzz.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { DadiError } from '../../errors.js';
import { detectTar, openTarPayload } from './detect.js';
import { encodeTarHeader, octal, octalNoNul, TAR_BLOCK } from './header.js';

const have = haveFixtures('tar detection fixture tests');

/** A tar built from header field maps and data blocks. */
function tar(...parts: (Record<string, string> | Uint8Array)[]): Uint8Array {
  const blocks = parts.map((p) => {
    if (p instanceof Uint8Array) {
      const padded = new Uint8Array(Math.ceil(p.length / TAR_BLOCK) * TAR_BLOCK);
      padded.set(p);
      return padded;
    }
    return encodeTarHeader({ magic: 'ustar', version: '00', ...p }, { checksum: true });
  });
  return Buffer.concat([...blocks, new Uint8Array(1024)]);
}
const text = (s: string) => new TextEncoder().encode(s);
const size = (n: number) => octalNoNul(n, 12);

describe('detectTar', () => {
  it('finds a plain ustar member at 512', async () => {
    const f = new MemoryFile(tar({ name: 'blob', size: size(5), typeflag: '0' }, text('hello')));
    expect(await detectTar(f)).toEqual({ payloadOffset: 512, payloadSize: 5, memberName: 'blob' });
    const p = await openTarPayload(f);
    const b = new Uint8Array(10);
    expect(await p.read(b, 0)).toBe(5);
    expect(new TextDecoder().decode(b.subarray(0, 5))).toBe('hello');
  });

  it('walks PAX and GNU long-name headers to the payload', async () => {
    const rec = '13 path=long\n20 size=70000000000\n';
    const pax = tar({ name: 'p', typeflag: 'x', size: size(rec.length) }, text(rec), {
      name: 'short',
      typeflag: '0',
      size: size(0),
    });
    await expect(detectTar(new MemoryFile(pax))).rejects.toThrow(/runs past the end of the file/);
    const rec2 = '13 path=long\n11 size=10\n';
    const pax2 = tar(
      { name: 'p', typeflag: 'x', size: size(rec2.length) },
      text(rec2),
      { name: 'short', typeflag: '0', size: size(0) },
      text('0123456789'),
    );
    expect(await detectTar(new MemoryFile(pax2))).toEqual({ payloadOffset: 1536, payloadSize: 10, memberName: 'long' });

    const longName = `${'d/'.repeat(300)}file`;
    const gnu = tar(
      { name: '././@LongLink', typeflag: 'L', size: size(longName.length + 1) },
      text(`${longName}\0`),
      { name: 'trunc', typeflag: '0', size: size(3) },
      text('abc'),
    );
    expect(await detectTar(new MemoryFile(gnu))).toEqual({
      payloadOffset: 512 + 1024 + 512,
      payloadSize: 3,
      memberName: longName,
    });
    // A global header and a long link are skipped too.
    const g = tar(
      { name: 'g', typeflag: 'g', size: size(9) },
      text('9 a=bcd\n\n'),
      { name: 'l', typeflag: 'K', size: size(4) },
      text('tgt'),
      {
        name: 'm',
        typeflag: '0',
        size: size(1),
      },
    );
    expect(await detectTar(new MemoryFile(g))).toMatchObject({ payloadOffset: 2560, memberName: 'm' });
  });

  it('uses the ustar prefix for POSIX headers', async () => {
    const f = tar({ name: 'n', prefix: 'pre/fix', typeflag: '0', size: size(0) });
    expect((await detectTar(new MemoryFile(f)))?.memberName).toBe('pre/fix/n');
  });

  it('says undefined for non-tar files and bad first checksums', async () => {
    expect(await detectTar(new MemoryFile(new Uint8Array(100)))).toBeUndefined();
    expect(await detectTar(new MemoryFile(new Uint8Array(4096)))).toBeUndefined();
    const t = tar({ name: 'blob', size: size(5), typeflag: '0' }, text('hello'));
    t[0] = 0x43;
    expect(await detectTar(new MemoryFile(t))).toBeUndefined();
    const v7 = encodeTarHeader({ name: 'old', size: size(0) }, { checksum: true }); // no magic
    expect(await detectTar(new MemoryFile(v7))).toBeUndefined();
    await expect(openTarPayload(new MemoryFile(v7, 'v7.tar'))).rejects.toThrow(/v7\.tar: not a tar file/);
  });

  it('rejects broken chains and sizes with EFORMAT naming the file', async () => {
    const cases: Uint8Array[] = [
      tar({ name: 'blob', size: size(5000), typeflag: '0' }, text('short')),
      tar({ name: 'p', typeflag: 'x', size: size(11) }, text('11 size=x\n\n'), { name: 'm', typeflag: '0' }),
      tar({ name: 'p', typeflag: 'x', size: size(2 ** 30) }),
      encodeTarHeader({ magic: 'ustar', version: '00', name: 'p', typeflag: 'x', size: size(0) }, { checksum: true }),
      tar({ name: 'p', typeflag: 'x', size: size(0) }),
      tar(...Array.from({ length: 20 }, () => ({ name: 'p', typeflag: 'x', size: size(0) }))),
    ];
    const badSecond = tar({ name: 'p', typeflag: 'x', size: size(9) }, text('9 size=1\n'), {
      name: 'm',
      typeflag: '0',
      size: size(1),
    });
    badSecond[1024 + 5]! ^= 1;
    cases.push(badSecond);
    const huge = tar({ name: 'b', typeflag: '0' });
    huge.set([0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0], 124);
    huge.set(
      text(
        octal(
          [...huge].reduce((s, b, i) => s + (i >= 148 && i < 156 ? 32 : b), 0),
          8,
        ),
      ),
      148,
    );
    cases.push(huge);
    for (const c of cases) {
      const e = await detectTar(new MemoryFile(c, 'bad.tar')).catch((x) => x);
      expect(e).toBeInstanceOf(DadiError);
      expect(e.code).toBe('EFORMAT');
      expect(e.message).toMatch(/^bad\.tar: tar: /);
    }
  });

  it('survives a fuzz sample of mutated tar-wrapped ZFiles', async () => {
    const targets = await tarTargets();
    const rand = rng(99);
    let rejected = 0;
    for (let i = 0; i < 300; i++) {
      const t = targets[i % targets.length]!;
      const m = mutate(t.bytes, rand, t.fields, t.hot);
      try {
        if ((await checkTar(new MemoryFile(m.bytes), t.data, m.steps.length === 1, i)) === 'rejected') rejected++;
      } catch (e) {
        throw new Error(`case ${i} (${t.label}: ${m.steps.join(', ')}): ${(e as Error).stack}`);
      }
    }
    expect(rejected).toBeGreaterThan(50);
  });
});

describe.skipIf(!have)('detectTar on fixtures', () => {
  it('finds the ZFile in overlaybd -t output at 1536', async () => {
    const f = new MemoryFile(await readFile(fixture('overlaybd-samples/zfile/l1.zfile-lz4.tar')));
    expect(await detectTar(f)).toEqual({ payloadOffset: 1536, payloadSize: 145185, memberName: 'overlaybd.commit' });
  });

  it('accepts the GNU tar of the base layer', async () => {
    const f = new MemoryFile(gunzipSync(await readFile(fixture('overlaybd/ext4_64.tar.gz'))));
    expect(await detectTar(f)).toEqual({ payloadOffset: 512, payloadSize: 4737695, memberName: 'ext4_64' });
  });

  it('reports the first member of an ordinary tar', async () => {
    const t = await detectTar(new MemoryFile(await readFile(fixture('overlaybd-samples/inputs/l1.tar'))));
    expect(t?.payloadOffset).toBe(512);
  });
});
