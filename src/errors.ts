// The one error hierarchy of dadi. Every error names the file, ref or entry at fault and
// carries a short machine-readable code; the CLI prints `dadi: <message>` and exits non-zero.

export type DadiErrorCode =
  | 'EFORMAT' // bytes do not follow the format (bad magic, bad header, inconsistent fields)
  | 'ECORRUPT' // a checksum or digest does not match
  | 'ERANGE' // an offset or size outside what the file or format allows
  | 'ENOTFOUND'
  | 'EEXIST'
  | 'EINVAL' // bad argument
  | 'EIO'
  | 'EAUTH'
  | 'ETIMEDOUT'
  | 'EUNSUPPORTED';

export class DadiError extends Error {
  readonly code: DadiErrorCode;
  constructor(code: DadiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DadiError';
    this.code = code;
  }
}

export function formatError(name: string, what: string): DadiError {
  return new DadiError('EFORMAT', `${name}: ${what}`);
}
