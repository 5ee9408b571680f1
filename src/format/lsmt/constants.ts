// Constants of the LSMT format (spec §2.1). Sectors (512 B) are the unit inside LSMT only;
// everything exported as a BlockFile speaks bytes.

/** One sector; LSMT offsets, lengths and moffsets are in sectors. */
export const SECTOR = 512;
/** Reserved size of the header and of the trailer. */
export const HT_SPACE = 4096;
/** First data sector of a data file (just after the header). */
export const DATA_START_SECTOR = HT_SPACE / SECTOR;
/** Largest `length` of one mapping (14 bits). */
export const MAX_SEGMENT_LENGTH = 16383;
/** `offset` value of a padding / invalid index entry (2^50 − 1). */
export const INVALID_OFFSET = 2 ** 50 - 1;
/** Largest logical offset in sectors (50 bits). */
export const MAX_OFFSET = 2 ** 50 - 1;
/** Merge of more indexes than this fails. */
export const MAX_STACK_LAYERS = 255;
/** Sealed files whose trailer index_size exceeds this are rejected (padding included). */
export const MAX_RO_INDEX_SIZE = 1_000_000;
/** Limit for an RW index file and for a merged index. */
export const MAX_RW_INDEX_SIZE = 128_000_000;
/** Larger reads and writes are split into pieces of this size. */
export const MAX_IO_SIZE = 4 * 1024 * 1024;
/** Commit copies data in steps of this many sectors (32 KiB), one index entry per step. */
export const COMMIT_STEP_SECTORS = 64;
/** Committed indexes are padded with invalid entries to a multiple of this many entries. */
export const INDEX_PAD_ENTRIES = 256;
/**
 * Largest virtual disk size accepted, in bytes (256 TiB; ours, not the reference's 2^59): far above
 * real disks (overlaybd's default is 64 GiB), and it keeps every byte offset exact in a `number`.
 */
export const MAX_VIRTUAL_SIZE = 2 ** 48;
