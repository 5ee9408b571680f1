// The HTTP protocol between P2P agents and the root (JSON bodies, Range for bytes). One place for
// paths, headers and the validation of what arrives, shared by root.ts and agent.ts. Not transport.
//
// Root:  POST /p2p/v1/join    {blob, host}  + Authorization (the requester's registry credentials)
//                              → {path, grant, size, publicKey}  (401/403: no access, nothing else)
//        POST /p2p/v1/report  {digest, host, peer, problem} + X-P2P-Grant → {path}
//        GET  /p2p/v1/blob?registry=&repository=&digest=  + Range + X-P2P-Grant → bytes (206)
//        GET  /p2p/v1/status  → tracker and counters, for people and tests
// Agent: GET  /p2p/v1/blob?…  as above, served to its children (X-P2P-Host names the child)
//        (while the agent fetches the chunk itself, an HTTP 102 every 100 ms: it is alive, p2p/hedge.ts)
//        POST /p2p/v1/hello?digest=  + X-P2P-Host, X-P2P-Address, X-P2P-Grant: a child joined
//        PUT  /p2p/v1/push?digest=&chunk=N  + X-P2P-Host (the parent): a pushed chunk
//        GET  /[dadip2p/]<upstream blob URL>  overlaybd's P2P proxy form, Range + Authorization

import { DadiError } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import type { HostInfo, PeerProblem } from '../p2p/tracker.js';

export const PATHS = {
  join: '/p2p/v1/join',
  report: '/p2p/v1/report',
  blob: '/p2p/v1/blob',
  status: '/p2p/v1/status',
  hello: '/p2p/v1/hello',
  push: '/p2p/v1/push',
} as const;

export const HEADERS = {
  grant: 'x-p2p-grant',
  host: 'x-p2p-host',
  address: 'x-p2p-address',
  /** Names the node that served a response (as the open-source proxy does). */
  source: 'x-p2p-source',
} as const;

/** A blob as peers name it: the repository it was checked against, its digest and size. */
export interface BlobRef {
  registry: string;
  repository: string;
  digest: string;
}

export interface JoinRequest {
  blob: BlobRef;
  host: HostInfo;
}

export interface JoinAnswer {
  path: { id: string; address: string }[];
  grant: string;
  /** Grant expiry, ms since the epoch. */
  expiresAt: number;
  size: number;
  publicKey: string;
}

export interface ReportRequest {
  digest: string;
  host: string;
  peer: string;
  problem: PeerProblem;
}

/** Largest JSON body accepted by either side. */
export const MAX_JSON_BYTES = 64 * 1024;

function bad(what: string): DadiError {
  return new DadiError('EINVAL', what);
}

function str(v: unknown, what: string, max = 1024): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw bad(`${what} must be a non-empty string`);
  return v;
}

export function parseBlobRef(v: unknown, what = 'blob'): BlobRef {
  const o = (v ?? {}) as Record<string, unknown>;
  const digest = str(o.digest, `${what}.digest`);
  if (!isDigest(digest)) throw bad(`${what}.digest ${JSON.stringify(digest)} is not a sha256 digest`);
  const registry = str(o.registry, `${what}.registry`, 255);
  const repository = str(o.repository, `${what}.repository`, 255);
  if (!/^[a-z0-9]+(?:[._/-][a-z0-9]+)*$/.test(repository)) throw bad(`${what}.repository ${repository} is not valid`);
  if (!/^[A-Za-z0-9.-]+(?::\d+)?$/.test(registry)) throw bad(`${what}.registry ${registry} is not a host[:port]`);
  return { registry, repository, digest };
}

export function parseJoin(v: unknown): JoinRequest {
  const o = (v ?? {}) as Record<string, unknown>;
  const h = (o.host ?? {}) as Record<string, unknown>;
  const host: HostInfo = { id: str(h.id, 'host.id', 255), address: str(h.address, 'host.address') };
  if (!/^https?:\/\//.test(host.address)) throw bad(`host.address ${host.address} is not an http(s) URL`);
  if (h.upload !== undefined) {
    if (typeof h.upload !== 'number' || !(h.upload > 0) || !Number.isFinite(h.upload))
      throw bad('host.upload must be a positive number');
    host.upload = h.upload;
  }
  return { blob: parseBlobRef(o.blob), host };
}

export function parseReport(v: unknown): ReportRequest {
  const o = (v ?? {}) as Record<string, unknown>;
  const problem = o.problem;
  if (problem !== 'slow' && problem !== 'gone' && problem !== 'corrupt')
    throw bad('problem must be slow, gone or corrupt');
  const digest = str(o.digest, 'digest');
  if (!isDigest(digest)) throw bad(`digest ${digest} is not a sha256 digest`);
  return { digest, host: str(o.host, 'host', 255), peer: str(o.peer, 'peer', 255), problem };
}

/** The query of a blob URL. */
export function blobQuery(b: BlobRef): string {
  return new URLSearchParams({ registry: b.registry, repository: b.repository, digest: b.digest }).toString();
}

/** `bytes=a-b` → {offset, length}; undefined for anything else (one range only). */
export function parseRange(header: string | undefined): { offset: number; length: number } | undefined {
  const m = header ? /^bytes=(\d{1,15})-(\d{1,15})$/.exec(header.trim()) : null;
  if (!m) return undefined;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return b < a ? undefined : { offset: a, length: b - a + 1 };
}

/**
 * overlaybd's P2P proxy form: `/<upstream URL>` or `/dadip2p/<upstream URL>`, the upstream URL a
 * registry blob URL `http(s)://host[:port]/v2/<repo>/blobs/sha256:…`. Undefined when it is not one.
 */
export function parseProxyPath(path: string): (BlobRef & { upstream: string }) | undefined {
  const rest = path.replace(/^\/(?:dadip2p\/)?/, '');
  const m = /^(https?):\/+([^/]+)\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})(?:\?.*)?$/.exec(rest);
  if (!m) return undefined;
  try {
    const b = parseBlobRef({ registry: m[2], repository: m[3], digest: m[4] });
    return { ...b, upstream: `${m[1]}://${m[2]}/v2/${m[3]}/blobs/${m[4]}` };
  } catch {
    return undefined;
  }
}
