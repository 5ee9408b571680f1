import { describe, expect, it } from 'vitest';
import { aclFromDisk, aclToDisk } from './acl.js';

// A directory's access ACL (`setfacl -m u:99:rwx`), as the kernel hands it out (xattr form) and as
// `mkfs.ext4 -d` stored it on disk (read back raw with `debugfs -R 'ea_list /d'`).
const XATTR = Buffer.from(
  '0200000001000700ffffffff020007006300000004000500ffffffff10000700ffffffff20000500ffffffff',
  'hex',
);
const DISK = Buffer.from('01000000010007000200070063000000040005001000070020000500', 'hex');

describe('ext4 on-disk ACLs', () => {
  it('convert to the layout e2fsprogs writes, and back', () => {
    expect(Buffer.from(aclToDisk(XATTR, 'd'))).toEqual(DISK);
    expect(Buffer.from(aclFromDisk(DISK, 'd'))).toEqual(XATTR);
  });

  it('read values earlier versions stored raw as they are', () => {
    expect(Buffer.from(aclFromDisk(XATTR, 'd'))).toEqual(XATTR);
  });

  it('refuse truncated or unknown on-disk values', () => {
    expect(() => aclFromDisk(DISK.subarray(0, 14), 'inode 12')).toThrow(/inode 12: ext4 ACL entry past its end/);
    const v = Buffer.from(DISK);
    v[0] = 7;
    expect(() => aclFromDisk(v, 'inode 12')).toThrow(/ext4 ACL version 7/);
    expect(() => aclToDisk(DISK, 'inode 12')).toThrow(/POSIX ACL xattr/);
  });
});
