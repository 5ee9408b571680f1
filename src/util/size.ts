// Parse and print byte sizes for the CLI ("64G", "1GiB", "512K", "4096"). Binary units only.

import { DadiError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** "64G" → 68719476736. Accepts K/M/G/T/P with optional "i", "B" or "iB". */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+)\s*([KMGTP]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) throw new DadiError('EINVAL', `${what}: cannot parse "${text}" as a byte size (e.g. 64G, 512M, 4096)`);
  const value = Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
  if (!Number.isSafeInteger(value)) throw new DadiError('EINVAL', `${what}: "${text}" is too large`);
  return value;
}

/** 68719476736 → "64 GiB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 || Number.isInteger(v) ? 0 : 1)} ${units[i]}`;
}
