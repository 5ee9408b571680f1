import { describe, expect, it } from 'vitest';
import { ACL_UNDEFINED_ID, AclTag, decodePosixAcl, encodePosixAcl, parseAclText } from './posix-acl.js';

// Recorded from GNU tar 1.34 (`--acls --xattrs --xattrs-include='*'`) on one file after
// `setfacl -m u:1234:rx,g:55:r`: its SCHILY.acl.access text and SCHILY.xattr.system.posix_acl_access.
const TEXT = 'user::rw-\nuser:1234:r-x\ngroup::r--\ngroup:55:r--\nmask::r-x\nother::r--\n';
const XATTR = Buffer.from(
  '0200000001000600ffffffff02000500d204000004000400ffffffff080004003700000010000500ffffffff20000400ffffffff',
  'hex',
);

describe('POSIX ACL xattr values', () => {
  it('decode and encode are inverse on a value the kernel produced', () => {
    const entries = decodePosixAcl(XATTR, 'f');
    expect(entries).toEqual([
      { tag: AclTag.USER_OBJ, perm: 6, id: ACL_UNDEFINED_ID },
      { tag: AclTag.USER, perm: 5, id: 1234 },
      { tag: AclTag.GROUP_OBJ, perm: 4, id: ACL_UNDEFINED_ID },
      { tag: AclTag.GROUP, perm: 4, id: 55 },
      { tag: AclTag.MASK, perm: 5, id: ACL_UNDEFINED_ID },
      { tag: AclTag.OTHER, perm: 4, id: ACL_UNDEFINED_ID },
    ]);
    expect(Buffer.from(encodePosixAcl(entries))).toEqual(XATTR);
  });

  it('GNU tar text form parses to the same value as the xattr form', () => {
    expect(Buffer.from(encodePosixAcl(parseAclText(TEXT, 'f')))).toEqual(XATTR);
    // star's form carries the id after a name; commas separate entries too.
    const star = 'user::rw-,user:bob:r-x:1234,group::r--,group:staff:r--:55,mask::r-x,other::r--';
    expect(Buffer.from(encodePosixAcl(parseAclText(star, 'f')))).toEqual(XATTR);
  });

  it('refuses malformed values and texts with messages naming the member', () => {
    expect(() => decodePosixAcl(XATTR.subarray(0, 10), 'etc/x')).toThrow(/etc\/x: POSIX ACL xattr of 10 bytes/);
    const v1 = Buffer.from(XATTR);
    v1[0] = 1;
    expect(() => decodePosixAcl(v1, 'etc/x')).toThrow(/etc\/x: POSIX ACL xattr version 1/);
    const badTag = Buffer.from(XATTR);
    badTag[4] = 0x40;
    expect(() => decodePosixAcl(badTag, 'etc/x')).toThrow(/unknown tag 0x40/);
    expect(() => parseAclText('user:nobody:r--', 'a/b')).toThrow(/a\/b: .*without a numeric id/);
    expect(() => parseAclText('mask:1:r--', 'a/b')).toThrow(/bad ACL entry/);
    expect(() => parseAclText('user::rwz', 'a/b')).toThrow(/bad ACL permissions/);
  });
});
