// The one-member tar wrapper around layer blobs (spec §4): detection / payload view and the writer.
export { detectTar, openTarPayload, type TarPayload } from './detect.js';
export {
  decodeTarHeader,
  encodeTarHeader,
  formatPaxRecord,
  parsePaxRecords,
  parseTarNumber,
  TAR_BLOCK,
  TAR_FIELDS,
  type TarHeader,
} from './header.js';
export { TAR_WRAP_PAYLOAD_OFFSET, type TarWrapOptions, TarWrapWriter } from './writer.js';
