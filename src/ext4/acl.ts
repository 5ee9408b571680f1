// POSIX ACLs as ext4 stores them on disk (xattr name index 2 = access, 3 = default, empty name),
// converted from and to the xattr form the rest of dadi handles (format/posix-acl.ts). The kernel
// and e2fsprogs read only this layout: a raw xattr-form value there is an invalid ACL to them.
//
// Value layout (little-endian), as in the kernel's fs/ext4/acl.h:
//   header       a_version u32 = 1
//   short entry  e_tag u16 | e_perm u16                (USER_OBJ, GROUP_OBJ, MASK, OTHER)
//   long entry   e_tag u16 | e_perm u16 | e_id u32     (USER, GROUP)

import { DadiError } from '../errors.js';
import {
  ACL_UNDEFINED_ID,
  type AclEntry,
  aclTagHasId,
  decodePosixAcl,
  encodePosixAcl,
  MAX_ACL_ENTRIES,
  POSIX_ACL_XATTR_VERSION,
} from '../format/posix-acl.js';

const EXT4_ACL_VERSION = 1;
const HEADER = 4;
const SHORT = 4;
const LONG = 8;

/** The xattr-form value `value` in ext4's on-disk form; EFORMAT (naming `what`) when it is no ACL. */
export function aclToDisk(value: Uint8Array, what: string): Uint8Array {
  const entries = decodePosixAcl(value, what);
  const size = entries.reduce((n, e) => n + (aclTagHasId(e.tag) ? LONG : SHORT), HEADER);
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, EXT4_ACL_VERSION, true);
  let o = HEADER;
  for (const e of entries) {
    dv.setUint16(o, e.tag, true);
    dv.setUint16(o + 2, e.perm, true);
    if (aclTagHasId(e.tag)) dv.setUint32(o + 4, e.id, true);
    o += aclTagHasId(e.tag) ? LONG : SHORT;
  }
  return b;
}

/**
 * An on-disk ext4 ACL value in xattr form. Values already in xattr form (version 2, as earlier
 * dadi versions stored them raw) pass through, so such images still read back what they hold.
 */
export function aclFromDisk(value: Uint8Array, what: string): Uint8Array {
  const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
  if (value.length < HEADER) throw new DadiError('ECORRUPT', `${what}: ext4 ACL of ${value.length} bytes`);
  const version = dv.getUint32(0, true);
  if (version === POSIX_ACL_XATTR_VERSION) return value;
  if (version !== EXT4_ACL_VERSION) throw new DadiError('ECORRUPT', `${what}: ext4 ACL version ${version}`);
  const entries: AclEntry[] = [];
  let o = HEADER;
  while (o < value.length) {
    if (entries.length >= MAX_ACL_ENTRIES) throw new DadiError('ECORRUPT', `${what}: ext4 ACL has too many entries`);
    if (o + SHORT > value.length) throw new DadiError('ECORRUPT', `${what}: ext4 ACL entry past its end`);
    const tag = dv.getUint16(o, true);
    const perm = dv.getUint16(o + 2, true);
    if (aclTagHasId(tag)) {
      if (o + LONG > value.length) throw new DadiError('ECORRUPT', `${what}: ext4 ACL entry past its end`);
      entries.push({ tag, perm, id: dv.getUint32(o + 4, true) });
      o += LONG;
    } else {
      entries.push({ tag, perm, id: ACL_UNDEFINED_ID });
      o += SHORT;
    }
  }
  const out = encodePosixAcl(entries);
  decodePosixAcl(out, what); // unknown tags or permission bits: reject here, not in a caller
  return out;
}
