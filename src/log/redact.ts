// Credentials out of log output: secrets in free text (Authorization headers, bearer/basic
// credentials, JWTs, URL userinfo, token-like query parameters, password=… pairs) and in structured
// fields (any key that names a secret, at any depth). Every log line goes through here (logger.ts);
// error messages shown to the user are not changed.

export const REDACTED = '[REDACTED]';

/** Keys whose values are secret wherever they appear (compared lower-case, '-' and '_' ignored). */
const SECRET_KEYS = new Set(
  [
    'authorization',
    'proxy-authorization',
    'cookie',
    'set-cookie',
    'password',
    'passwd',
    'secret',
    'token',
    'access_token',
    'refresh_token',
    'id_token',
    'identitytoken',
    'registrytoken',
    'auth',
    'x-amz-security-token',
  ].map(norm),
);

/** Query parameters that carry credentials in URLs (signed URLs, token endpoints). */
const SECRET_PARAMS =
  'access_token|refresh_token|id_token|token|password|passwd|secret|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|apikey|api_key|key';

const TEXT_RULES: Array<[RegExp, string]> = [
  // scheme://user:password@host → scheme://[REDACTED]@host
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"<>]+@/gi, `$1${REDACTED}@`],
  // ?token=…&x=… → ?token=[REDACTED]&x=…
  [new RegExp(`([?&;](?:${SECRET_PARAMS})=)[^&#\\s'"<>]*`, 'gi'), `$1${REDACTED}`],
  // Authorization: Bearer xyz / authorization=Basic xyz / "authorization":"…"
  [/\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;}]+/gi, `$1${REDACTED}`],
  // Bearer xyz, Basic xyz anywhere
  [/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  // JSON Web Tokens
  [/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // password=…, "token": "…", secret: …
  [
    /\b((?:password|passwd|secret|token|access_token|refresh_token|identitytoken)["']?\s*[:=]\s*["']?)[^\s"'&,;}]+/gi,
    `$1${REDACTED}`,
  ],
];

function norm(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, '');
}

/** `text` with every credential we recognise replaced by [REDACTED]. */
export function redactText(text: string): string {
  let out = text;
  for (const [re, to] of TEXT_RULES) out = out.replace(re, to);
  return out;
}

/**
 * A copy of `value` with secret-named keys censored and every string redacted; bounded in depth and
 * breadth so a huge or cyclic object cannot stall the logger.
 */
export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8 || seen.has(value)) return '[…]';
  seen.add(value);
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => redactValue(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  // Errors keep their message and stack, which are not enumerable.
  const src =
    value instanceof Error
      ? { ...(value as object), type: value.name, message: value.message, stack: value.stack }
      : value;
  let n = 0;
  for (const [k, v] of Object.entries(src)) {
    if (n++ >= 200) break;
    out[k] =
      SECRET_KEYS.has(norm(k)) && v !== undefined && v !== null && v !== ''
        ? REDACTED
        : redactValue(v, depth + 1, seen);
  }
  return out;
}
