// What the manifest, blob-read and upload roles share: a repository's name and URLs, per-operation
// options, and the request spec with the pull (or pull,push) scope for that repository. The roles
// see the transport only through `RegistryHttp`, so their tests can script the responses.

import { repositoryScope } from './auth.js';
import type { HttpMethod, RequestSpec, Transport } from './transport.js';

/** A repository on a registry; a `Reference` is one. */
export interface RepoRef {
  registry: string;
  repository: string;
}

/** Per-operation options. */
export interface OpOptions {
  signal?: AbortSignal;
  /** Absolute deadline in ms since epoch (default: now + the client's deadlineMs). */
  deadline?: number;
}

/** The part of the Transport the roles use. */
export type RegistryHttp = Pick<Transport, 'request' | 'origin'>;

/** `host/repo`, for messages. */
export function repoName(repo: RepoRef): string {
  return `${repo.registry}/${repo.repository}`;
}

/** `scheme://host/v2/repo/<tail>`. */
export function repoUrl(http: RegistryHttp, repo: RepoRef, tail: string): string {
  return `${http.origin(repo.registry)}/v2/${repo.repository}/${tail}`;
}

/** A request on `repo`, authorised for pulling (or pushing too), with the operation's signal and deadline. */
export function repoRequest(
  method: HttpMethod,
  url: string,
  repo: RepoRef,
  what: string,
  opts: OpOptions,
  push = false,
): RequestSpec {
  const s: RequestSpec = {
    method,
    url,
    what,
    auth: { registry: repo.registry, scopes: [repositoryScope(repo.repository, push ? 'pull,push' : 'pull')] },
  };
  withOpOptions(s, opts);
  return s;
}

/** Copy the operation's signal and deadline onto a request. */
export function withOpOptions(s: RequestSpec, opts: OpOptions): RequestSpec {
  if (opts.signal) s.signal = opts.signal;
  if (opts.deadline !== undefined) s.deadline = opts.deadline;
  return s;
}
