// Platform naming and selection: this machine's OCI platform, parsing `os/arch[/variant]`, and
// picking the best manifest of an index, listing an index tree's platform images. Not for fetching:
// callers pass how to read a manifest.

import { endianness, arch as osArch } from 'node:os';
import { DadiError } from '../errors.js';
import type { Descriptor, ImageIndex, ParsedManifest, Platform } from './manifest.js';
import { isIndexType } from './media-types.js';

const ARCH: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm64: 'arm64',
  arm: 'arm',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
  ppc: 'ppc',
};

/** This machine's platform in OCI terms, e.g. `{os: 'linux', architecture: 'amd64'}`. */
export function hostPlatform(): Platform {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const a = osArch();
  let architecture = ARCH[a] ?? a;
  if (a === 'ppc64') architecture = endianness() === 'LE' ? 'ppc64le' : 'ppc64';
  const p: Platform = { os, architecture };
  if (architecture === 'arm64') p.variant = 'v8';
  if (architecture === 'arm') {
    const v = (process.config.variables as unknown as Record<string, unknown>).arm_version;
    p.variant = `v${typeof v === 'string' || typeof v === 'number' ? v : '7'}`;
  }
  return p;
}

/** Parse `os/arch[/variant]` (e.g. `linux/arm64/v8`). */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => x === '')) {
    throw new DadiError('EINVAL', `bad platform ${JSON.stringify(s)}: expected os/arch[/variant]`);
  }
  const p: Platform = { os: parts[0]!.toLowerCase(), architecture: parts[1]!.toLowerCase() };
  if (parts[2]) p.variant = parts[2].toLowerCase();
  return p;
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

function normVariant(p: Platform): string {
  if (p.variant) return p.variant;
  if (p.architecture === 'arm64') return 'v8';
  if (p.architecture === 'arm') return 'v7';
  return '';
}

/**
 * How well `have` suits a host of platform `want`: -1 means it cannot run; higher is better.
 * An arm host of variant vN also runs older variants (v7 runs v6 and v5), ranked lower.
 */
export function platformScore(want: Platform, have: Platform): number {
  if (want.os !== have.os || want.architecture !== have.architecture) return -1;
  const wv = normVariant(want);
  const hv = normVariant(have);
  if (wv === hv) return 100;
  if (wv === '') return 80; // no variant asked for (e.g. amd64): any variant runs, exact preferred
  if (want.architecture === 'arm' && /^v\d+$/.test(wv) && /^v\d+$/.test(hv)) {
    const w = Number(wv.slice(1));
    const h = Number(hv.slice(1));
    return h < w ? 50 - (w - h) : -1;
  }
  return -1;
}

/** Platforms that mark attestations and other non-image entries of an index. */
function isNonImage(d: Descriptor): boolean {
  return (
    d.annotations?.['vnd.docker.reference.type'] !== undefined ||
    (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown')
  );
}

/** Most image manifests one index tree may list, and how deep its indexes may nest. */
const MAX_PLATFORM_IMAGES = 256;
const MAX_NESTING = 4;

/**
 * Every image manifest of an index tree that has a platform (attestations and other non-images
 * left out), nested indexes walked through `read`, in index order; EFORMAT naming `what` when the
 * tree nests too deep or lists too many.
 */
export async function platformImages(
  index: ImageIndex,
  read: (d: Descriptor) => Promise<ParsedManifest>,
  what: string,
  depth = 0,
): Promise<Descriptor[]> {
  if (depth > MAX_NESTING) throw new DadiError('EFORMAT', `${what}: indexes nested too deep`);
  const out: Descriptor[] = [];
  for (const d of index.manifests) {
    if (isNonImage(d)) continue;
    if (isIndexType(d.mediaType)) {
      const m = await read(d);
      if (m.kind === 'index') out.push(...(await platformImages(m.index, read, what, depth + 1)));
    } else if (d.platform) out.push(d);
    if (out.length > MAX_PLATFORM_IMAGES)
      throw new DadiError('EFORMAT', `${what}: more than ${MAX_PLATFORM_IMAGES} platform images`);
  }
  return out;
}

/**
 * The best entry of an index for `want` (default: this machine), or undefined when none fits.
 * Entries without a platform that are themselves indexes (nested indexes usually carry none), or
 * the sole entry of the index, are returned as a fallback; the caller descends into an index.
 */
export function selectPlatform(index: ImageIndex, want: Platform = hostPlatform()): Descriptor | undefined {
  let best: Descriptor | undefined;
  let bestScore = -1;
  let nested: Descriptor | undefined;
  for (const d of index.manifests) {
    if (isNonImage(d)) continue;
    if (!d.platform) {
      if (isIndexType(d.mediaType) || index.manifests.length === 1) nested ??= d;
      continue;
    }
    const s = platformScore(want, d.platform);
    if (s > bestScore) {
      best = d;
      bestScore = s;
    }
  }
  return best ?? nested;
}
