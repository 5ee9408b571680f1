// Image and blob references `host[:port]/repo[:tag][@sha256:…]`, and which scheme a host is
// reached by. Not a Docker Hub normaliser: the registry host is always explicit.

import { isIP } from 'node:net';
import { DadiError } from '../errors.js';
import { type Digest, parseDigest } from '../oci/digest.js';

export interface Reference {
  /** `host[:port]` as written (host lower-cased; IPv6 in brackets). */
  registry: string;
  /** Repository path, e.g. `library/redis`. */
  repository: string;
  tag?: string;
  digest?: Digest;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOSTNAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?))*$/;

function invalid(ref: string, why: string): DadiError {
  return new DadiError('EINVAL', `bad reference ${JSON.stringify(ref)}: ${why}`);
}

/** Split `host[:port]` (IPv6 as `[addr]:port`) into hostname and port; throws on malformed input. */
export function splitHost(registry: string): { hostname: string; port?: number } {
  let hostname: string;
  let portText: string | undefined;
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    if (end < 0) throw new DadiError('EINVAL', `bad registry host ${JSON.stringify(registry)}`);
    hostname = registry.slice(1, end);
    const rest = registry.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':'))
      throw new DadiError('EINVAL', `bad registry host ${JSON.stringify(registry)}`);
    portText = rest === '' ? undefined : rest.slice(1);
    if (isIP(hostname) !== 6) throw new DadiError('EINVAL', `bad IPv6 address in ${JSON.stringify(registry)}`);
  } else {
    const i = registry.lastIndexOf(':');
    hostname = i < 0 ? registry : registry.slice(0, i);
    portText = i < 0 ? undefined : registry.slice(i + 1);
    if (!HOSTNAME.test(hostname) && isIP(hostname) !== 4) {
      throw new DadiError('EINVAL', `bad registry host ${JSON.stringify(registry)}`);
    }
  }
  if (portText === undefined) return { hostname: hostname.toLowerCase() };
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
    throw new DadiError('EINVAL', `bad port in registry host ${JSON.stringify(registry)}`);
  }
  return { hostname: hostname.toLowerCase(), port };
}

function looksLikeHost(s: string): boolean {
  return s.includes('.') || s.includes(':') || s === 'localhost' || s.startsWith('[');
}

/**
 * Parse `host[:port]/repo[:tag][@digest]`. The first path component must be a registry host
 * (it contains `.` or `:`, or is `localhost`); there is no implicit Docker Hub.
 *
 * ```ts
 * parseReference('127.0.0.1:5000/dadi/base:v1')   // {registry:'127.0.0.1:5000', repository:'dadi/base', tag:'v1'}
 * parseReference('reg.example.com/a/b@sha256:…')  // {…, digest:'sha256:…'}
 * ```
 */
export function parseReference(ref: string): Reference {
  if (ref.length > 4096) throw invalid(ref.slice(0, 64), 'too long');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref))
    throw invalid(ref, 'write it without a URL scheme (host[:port]/repo[:tag])');
  let rest = ref;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = parseDigest(rest.slice(at + 1), `reference ${JSON.stringify(ref)}`);
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf('/');
  if (slash < 0 || !looksLikeHost(rest.slice(0, slash))) {
    throw invalid(
      ref,
      'no registry host: write host[:port]/repository[:tag|@digest] (for example 127.0.0.1:5000/app:v1)',
    );
  }
  const registry = rest.slice(0, slash);
  const { hostname, port } = splitHost(registry);
  const hostOut = (hostname.includes(':') ? `[${hostname}]` : hostname) + (port !== undefined ? `:${port}` : '');
  let path = rest.slice(slash + 1);
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon >= 0) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(ref, `bad tag ${JSON.stringify(tag)}`);
  }
  if (path === '') throw invalid(ref, 'no repository');
  for (const c of path.split('/')) {
    if (!COMPONENT.test(c))
      throw invalid(
        ref,
        `bad repository component ${JSON.stringify(c)} (lower-case letters, digits, separators . _ -)`,
      );
  }
  if (path.length > 255) throw invalid(ref, 'repository name too long');
  const r: Reference = { registry: hostOut, repository: path };
  if (tag !== undefined) r.tag = tag;
  if (digest !== undefined) r.digest = digest;
  return r;
}

/** The canonical string of a reference (`host/repo:tag@digest`). */
export function formatReference(r: Reference): string {
  return `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** What to ask the manifests endpoint for: the digest if any, else the tag, else `latest`. */
export function manifestTarget(r: Reference): string {
  return r.digest ?? r.tag ?? 'latest';
}

/** True for localhost, 127.0.0.0/8 and ::1. */
export function isLoopbackHost(registry: string): boolean {
  const { hostname } = splitHost(registry);
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) return true;
  if (isIP(hostname) === 4) return hostname.startsWith('127.');
  if (isIP(hostname) === 6) return hostname === '::1' || hostname === '0:0:0:0:0:0:0:1';
  return false;
}

/** How hosts are reached. */
export interface SchemeOptions {
  /** Hosts (`host` or `host:port`) reached over plain HTTP, or `true` for all. */
  insecure?: boolean | readonly string[];
  /** Use HTTPS even for loopback hosts (a TLS registry on 127.0.0.1). */
  forceHttps?: boolean;
}

/**
 * `http` for loopback and `--insecure` hosts, `https` otherwise.
 *
 * ```ts
 * registryScheme('127.0.0.1:5000') // 'http'
 * registryScheme('reg.example.com', {insecure: ['reg.example.com']}) // 'http'
 * ```
 */
export function registryScheme(registry: string, opts: SchemeOptions = {}): 'http' | 'https' {
  if (opts.insecure === true) return 'http';
  if (Array.isArray(opts.insecure)) {
    const { hostname } = splitHost(registry);
    const bare = hostname.includes(':') ? `[${hostname}]` : hostname;
    const lower = registry.toLowerCase();
    if (opts.insecure.some((h) => h.toLowerCase() === lower || h.toLowerCase() === bare)) return 'http';
  }
  if (!opts.forceHttps && isLoopbackHost(registry)) return 'http';
  return 'https';
}

/** `scheme://host[:port]` of a registry. */
export function registryOrigin(registry: string, opts: SchemeOptions = {}): string {
  return `${registryScheme(registry, opts)}://${registry}`;
}
