// Tar: the one header codec (header.ts), the one-member wrapper around layer blobs (spec §4:
// detection / payload view and the writer) and the streaming reader of OCI layer tars.
export { detectTar, openTarPayload, type TarPayload, tarPayloadFile } from './detect.js';
export { goSingleFileTar } from './go-member.js';
export {
  decodeTarHeader,
  encodeTarHeader,
  formatPaxRecord,
  type PaxRecords,
  parsePaxRecords,
  parseTarNumber,
  quoteTarName,
  TAR_BLOCK,
  TAR_FIELDS,
  TAR_MAX_EXTENSION_SIZE,
  type TarHeader,
  type TarTime,
  TarTypeflag,
} from './header.js';
export { readTar, type TarEntry, type TarEntryKind } from './reader.js';
export { MAX_SPARSE_REGIONS, type SparseRegion } from './sparse.js';
export { TAR_WRAP_PAYLOAD_OFFSET, type TarWrapOptions, TarWrapWriter } from './writer.js';
