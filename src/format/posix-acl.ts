// POSIX ACLs as Linux passes them through the xattr interface (`system.posix_acl_access` and
// `system.posix_acl_default`): the value layout, its decode/encode pair, and the ACL text form GNU
// tar writes into SCHILY.acl.* records. Not how a filesystem stores them (ext4: ext4/acl.ts).
//
// Value layout (little-endian), as in the kernel's posix_acl_xattr.h:
//   header  a_version u32 = 2
//   entry   e_tag u16 | e_perm u16 | e_id u32     (e_id = 0xffffffff for the entries without an id)

import { DadiError } from '../errors.js';

export const POSIX_ACL_XATTR_VERSION = 2;
const HEADER = 4;
const ENTRY = 8;
/** e_id of the entries that carry none. */
export const ACL_UNDEFINED_ID = 0xffffffff;

/** e_tag values. */
export const AclTag = {
  USER_OBJ: 0x01,
  USER: 0x02,
  GROUP_OBJ: 0x04,
  GROUP: 0x08,
  MASK: 0x10,
  OTHER: 0x20,
} as const;

/** Whether entries of this tag name a user or group id. */
export function aclTagHasId(tag: number): boolean {
  return tag === AclTag.USER || tag === AclTag.GROUP;
}

const KNOWN_TAGS: ReadonlySet<number> = new Set(Object.values(AclTag));

export interface AclEntry {
  tag: number;
  /** rwx bits (4 read, 2 write, 1 execute). */
  perm: number;
  /** User or group id for USER/GROUP entries; ACL_UNDEFINED_ID for the others. */
  id: number;
}

/** Largest entry count accepted (a 64 KiB xattr value holds fewer). */
export const MAX_ACL_ENTRIES = 8190;

/**
 * Decode a `system.posix_acl_*` xattr value; EFORMAT (naming `what`) when it is not one.
 * @example decodePosixAcl(xattrs.get('system.posix_acl_access')!, 'etc/shadow')
 */
export function decodePosixAcl(value: Uint8Array, what: string): AclEntry[] {
  const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
  if (value.length < HEADER || (value.length - HEADER) % ENTRY !== 0)
    throw new DadiError('EFORMAT', `${what}: POSIX ACL xattr of ${value.length} bytes is not a whole entry list`);
  const version = dv.getUint32(0, true);
  if (version !== POSIX_ACL_XATTR_VERSION)
    throw new DadiError('EFORMAT', `${what}: POSIX ACL xattr version ${version} (expected ${POSIX_ACL_XATTR_VERSION})`);
  const n = (value.length - HEADER) / ENTRY;
  if (n > MAX_ACL_ENTRIES) throw new DadiError('ERANGE', `${what}: POSIX ACL with ${n} entries`);
  const out: AclEntry[] = [];
  for (let i = 0; i < n; i++) {
    const o = HEADER + i * ENTRY;
    const tag = dv.getUint16(o, true);
    if (!KNOWN_TAGS.has(tag))
      throw new DadiError('EFORMAT', `${what}: POSIX ACL entry ${i} has unknown tag 0x${tag.toString(16)}`);
    const perm = dv.getUint16(o + 2, true);
    if (perm & ~7)
      throw new DadiError('EFORMAT', `${what}: POSIX ACL entry ${i} has permission bits 0x${perm.toString(16)}`);
    out.push({ tag, perm, id: aclTagHasId(tag) ? dv.getUint32(o + 4, true) : ACL_UNDEFINED_ID });
  }
  return out;
}

/** Encode entries as a `system.posix_acl_*` xattr value. */
export function encodePosixAcl(entries: readonly AclEntry[]): Uint8Array {
  const b = new Uint8Array(HEADER + entries.length * ENTRY);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, POSIX_ACL_XATTR_VERSION, true);
  entries.forEach((e, i) => {
    const o = HEADER + i * ENTRY;
    dv.setUint16(o, e.tag, true);
    dv.setUint16(o + 2, e.perm, true);
    dv.setUint32(o + 4, aclTagHasId(e.tag) ? e.id : ACL_UNDEFINED_ID, true);
  });
  return b;
}

const TEXT_TAGS: Record<string, [withId: number, withoutId: number]> = {
  user: [AclTag.USER, AclTag.USER_OBJ],
  u: [AclTag.USER, AclTag.USER_OBJ],
  group: [AclTag.GROUP, AclTag.GROUP_OBJ],
  g: [AclTag.GROUP, AclTag.GROUP_OBJ],
  mask: [-1, AclTag.MASK],
  m: [-1, AclTag.MASK],
  other: [-1, AclTag.OTHER],
  o: [-1, AclTag.OTHER],
};

/**
 * Parse the ACL text form (entries separated by newlines or commas: `user::rwx`, `user:1000:r-x`,
 * star's `user:name:r-x:1000`) into entries in the kernel's order (tag, then id). A qualifier that
 * is a name with no numeric id cannot be resolved without the image's user database: EUNSUPPORTED.
 */
export function parseAclText(text: string, what: string): AclEntry[] {
  const out: AclEntry[] = [];
  for (const raw of text.split(/[\n,]/)) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    if (out.length >= MAX_ACL_ENTRIES) throw new DadiError('ERANGE', `${what}: ACL text has too many entries`);
    const f = line.split(':');
    const kinds = TEXT_TAGS[f[0]!];
    if (!kinds || f.length < 3 || f.length > 4)
      throw new DadiError('EFORMAT', `${what}: bad ACL entry ${JSON.stringify(line)}`);
    const qualifier = f[1]!;
    const idText = f.length === 4 ? f[3]! : qualifier;
    let tag = kinds[1];
    let id = ACL_UNDEFINED_ID;
    if (qualifier !== '') {
      tag = kinds[0];
      if (tag < 0) throw new DadiError('EFORMAT', `${what}: bad ACL entry ${JSON.stringify(line)}`);
      if (!/^\d{1,10}$/.test(idText) || Number(idText) >= ACL_UNDEFINED_ID)
        throw new DadiError(
          'EUNSUPPORTED',
          `${what}: ACL entry ${JSON.stringify(line)} names a user or group without a numeric id (archive it with --xattrs or numeric ids)`,
        );
      id = Number(idText);
    }
    const p = f[2]!;
    if (!/^[r-][w-][x-]$/.test(p))
      throw new DadiError('EFORMAT', `${what}: bad ACL permissions ${JSON.stringify(line)}`);
    out.push({ tag, perm: (p[0] === 'r' ? 4 : 0) | (p[1] === 'w' ? 2 : 0) | (p[2] === 'x' ? 1 : 0), id });
  }
  return out.sort((a, b) => a.tag - b.tag || a.id - b.id);
}
