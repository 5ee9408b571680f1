// UUID text helpers for LSMT headers: parse any case, emit upper case (as the reference does),
// the null uuid, random v4 uuids for new RW layers. Not a general UUID library.

import { randomUUID } from 'node:crypto';
import { DadiError } from '../../errors.js';

/** The null uuid as written in headers. */
export const NULL_UUID = '00000000-0000-0000-0000-000000000000';

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** True for a 36-character dashed hex uuid (any case). */
export function isValidUuid(text: string): boolean {
  return UUID_RE.test(text);
}

/**
 * Normalise a uuid to the header form (upper case). Throws EINVAL for anything else.
 * @example normalizeUuid('a1b2c3d4-0001-4000-8000-000000000001') // 'A1B2C3D4-0001-4000-8000-000000000001'
 */
export function normalizeUuid(text: string, what = 'uuid'): string {
  if (!isValidUuid(text)) throw new DadiError('EINVAL', `${what}: not a valid uuid: ${JSON.stringify(text)}`);
  return text.toUpperCase();
}

/** Header text → normalised uuid, or the null uuid if the text is not a valid uuid. */
export function uuidOrNull(text: string): string {
  return isValidUuid(text) ? text.toUpperCase() : NULL_UUID;
}

export function isNullUuid(text: string): boolean {
  return !isValidUuid(text) || /^[0-]+$/.test(text);
}

/** The 16 binary bytes of a uuid (byte i ↔ hex digits 2i, 2i+1; no field swapping). */
export function uuidToBytes(text: string): Uint8Array {
  const hex = normalizeUuid(text).replaceAll('-', '');
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function uuidFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new DadiError('EINVAL', `uuid: need 16 bytes, got ${bytes.length}`);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A random v4 uuid, upper case (new RW layers). */
export function randomUuid(): string {
  return randomUUID().toUpperCase();
}
