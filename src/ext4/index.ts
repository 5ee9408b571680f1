// The userspace ext4 package: mkfs, the filesystem object (read and write), OCI layer apply.
// Import from here; the other modules are its parts.

export { type ApplyOptions, type ApplyStats, applyLayer } from './apply.js';
export { type Compression, decompress, detectCompression } from './decompress.js';
export { type FileBlocks, FileWriter } from './file-writer.js';
export { type Attrs, Ext4, type FileKind, nameKey, type OpenOptions, type Stat } from './fs.js';
export type { Time } from './layout.js';
export { DEFAULT_SIZE, LOST_FOUND_INO, type MkfsOptions, mkfs } from './mkfs.js';
export { SparseMemoryFile } from './sparse-file.js';
export type { Xattrs } from './xattr.js';
