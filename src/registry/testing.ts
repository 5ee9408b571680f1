// A fake transport for the registry roles' unit tests: requests go to a route function instead of
// the network, and an in-memory registry route answers the distribution API (manifests, blobs with
// ranges, upload sessions, mounts, tag lists). Tests wrap the route to inject faults. Outside tests
// only the daemon's warm-up (runtime/warm-up.ts) serves its own tiny image with it, on loopback.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { type Digest, sha256Of } from '../oci/digest.js';
import type { RegistryHttp } from './repo-request.js';
import { type HttpResponse, type RequestSpec, TransientError } from './transport.js';

export interface FakeReply {
  status: number;
  headers?: Record<string, string>;
  /** The body, in the chunks the client will see. */
  body?: Uint8Array | Uint8Array[];
}

export type FakeRoute = (req: RequestSpec) => FakeReply | Promise<FakeReply>;

/** Runs requests against `route`; a TransientError from a handler is retried up to `maxAttempts`, as the Transport does. */
export class FakeHttp implements RegistryHttp {
  /** Every request sent, in order. */
  readonly requests: RequestSpec[] = [];

  constructor(
    public route: FakeRoute,
    private readonly maxAttempts = 3,
  ) {}

  origin(registry: string): string {
    return `http://${registry}`;
  }

  async request<T>(spec: RequestSpec, handle: (res: HttpResponse) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      this.requests.push(spec);
      const r = await this.route(spec);
      const chunks = r.body === undefined ? [] : Array.isArray(r.body) ? r.body : [r.body];
      const res: HttpResponse = {
        status: r.status,
        headers: Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
        body: Readable.from(chunks.map((c) => Buffer.from(c))) as unknown as HttpResponse['body'],
        url: spec.url,
      };
      try {
        return await handle(res);
      } catch (e) {
        if (!(e instanceof TransientError)) throw e;
        if (spec.retry === false || attempt >= this.maxAttempts) throw e.error;
      }
    }
  }

  /** `METHOD path` of every request, for asserting the conversation. */
  log(): string[] {
    return this.requests.map((r) => `${r.method} ${new URL(r.url).pathname}`);
  }
}

function json(status: number, v: unknown): FakeReply {
  return { status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(v)) };
}

/**
 * An in-memory registry (one host, any repositories) speaking enough of the distribution API for
 * the client: blobs are shared between repositories only through mounts, as on a real registry.
 */
export class MemoryRegistry {
  /** `repo` → digest → bytes. */
  readonly blobs = new Map<string, Map<string, Buffer>>();
  /** `repo` → tag or digest → manifest. */
  readonly manifests = new Map<string, Map<string, { bytes: Buffer; mediaType: string }>>();
  /** Open upload sessions: id → bytes received so far. */
  readonly uploads = new Map<string, { repo: string; parts: Buffer[] }>();
  /** Tags per page of the tag list (Link pagination past it). */
  tagPageSize = 100;
  private nextId = 1;

  putBlob(repo: string, bytes: Uint8Array): Digest {
    const d = sha256Of(bytes);
    this.repoBlobs(repo).set(d, Buffer.from(bytes));
    return d;
  }

  putManifest(repo: string, bytes: Uint8Array, mediaType: string, tag?: string): Digest {
    const d = sha256Of(bytes);
    const m = this.repoManifests(repo);
    m.set(d, { bytes: Buffer.from(bytes), mediaType });
    if (tag !== undefined) m.set(tag, { bytes: Buffer.from(bytes), mediaType });
    return d;
  }

  private repoBlobs(repo: string): Map<string, Buffer> {
    let m = this.blobs.get(repo);
    if (!m) this.blobs.set(repo, (m = new Map()));
    return m;
  }

  private repoManifests(repo: string): Map<string, { bytes: Buffer; mediaType: string }> {
    let m = this.manifests.get(repo);
    if (!m) this.manifests.set(repo, (m = new Map()));
    return m;
  }

  /** The route answering requests (pass to FakeHttp, or wrap it). */
  readonly route: FakeRoute = (req) => {
    const url = new URL(req.url);
    const m = /^\/v2\/(.+)\/(manifests|blobs|tags)\/(.*)$/.exec(url.pathname);
    if (!m) return { status: 404 };
    const [, repo, kind, rest] = m as unknown as [string, string, string, string];
    if (kind === 'manifests') return this.manifest(req, repo, rest);
    if (kind === 'tags') return this.tags(url, repo);
    if (rest.startsWith('uploads/')) return this.upload(req, url, repo, rest.slice('uploads/'.length));
    return this.blob(req, repo, rest);
  };

  private manifest(req: RequestSpec, repo: string, target: string): FakeReply {
    if (req.method === 'PUT') {
      const bytes = Buffer.from(req.body as Uint8Array);
      const d = this.putManifest(
        repo,
        bytes,
        req.headers?.['content-type'] ?? '',
        target.startsWith('sha256:') ? undefined : target,
      );
      return { status: 201, headers: { 'docker-content-digest': d } };
    }
    const hit = this.manifests.get(repo)?.get(target);
    if (!hit) return json(404, { errors: [{ code: 'MANIFEST_UNKNOWN' }] });
    const headers = {
      'content-type': hit.mediaType,
      'content-length': String(hit.bytes.length),
      'docker-content-digest': sha256Of(hit.bytes),
    };
    return { status: 200, headers, body: req.method === 'HEAD' ? undefined : hit.bytes };
  }

  private tags(url: URL, repo: string): FakeReply {
    const known = this.manifests.get(repo);
    if (!known) return json(404, { errors: [{ code: 'NAME_UNKNOWN' }] });
    const all = [...known.keys()].filter((t) => !t.startsWith('sha256:')).sort();
    const last = url.searchParams.get('last');
    const from = last === null ? 0 : all.indexOf(last) + 1;
    const page = all.slice(from, from + this.tagPageSize);
    const r = json(200, { name: repo, tags: page });
    if (from + this.tagPageSize < all.length) {
      r.headers!.link = `</v2/${repo}/tags/list?n=${this.tagPageSize}&last=${page.at(-1)}>; rel="next"`;
    }
    return r;
  }

  private blob(req: RequestSpec, repo: string, digest: string): FakeReply {
    const bytes = this.blobs.get(repo)?.get(digest);
    if (!bytes) return json(404, { errors: [{ code: 'BLOB_UNKNOWN' }] });
    if (req.method === 'HEAD') return { status: 200, headers: { 'content-length': String(bytes.length) } };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers?.range ?? '');
    if (!range) return { status: 200, headers: { 'content-length': String(bytes.length) }, body: bytes };
    const start = Number(range[1]);
    const end = Math.min(bytes.length - 1, range[2] === '' ? bytes.length - 1 : Number(range[2]));
    if (start >= bytes.length) return { status: 416, headers: { 'content-range': `bytes */${bytes.length}` } };
    return {
      status: 206,
      headers: { 'content-range': `bytes ${start}-${end}/${bytes.length}`, 'content-length': String(end - start + 1) },
      body: bytes.subarray(start, end + 1),
    };
  }

  private upload(req: RequestSpec, url: URL, repo: string, id: string): FakeReply {
    if (req.method === 'POST') {
      const mount = url.searchParams.get('mount');
      const from = url.searchParams.get('from');
      const source = mount && from ? this.blobs.get(from)?.get(mount) : undefined;
      if (mount && source) {
        this.repoBlobs(repo).set(mount, source);
        return { status: 201, headers: { location: `/v2/${repo}/blobs/${mount}` } };
      }
      const sid = `s${this.nextId++}`;
      this.uploads.set(sid, { repo, parts: [] });
      return { status: 202, headers: { location: `/v2/${repo}/blobs/uploads/${sid}` } };
    }
    const session = this.uploads.get(id);
    if (!session || session.repo !== repo) return json(404, { errors: [{ code: 'BLOB_UPLOAD_UNKNOWN' }] });
    const received = () => session.parts.reduce((n, p) => n + p.length, 0);
    if (req.method === 'DELETE') {
      this.uploads.delete(id);
      return { status: 204 };
    }
    const body = req.body === undefined ? Buffer.alloc(0) : Buffer.from(req.body as Uint8Array);
    if (req.method === 'PATCH') {
      const start = Number(/^(\d+)-/.exec(req.headers?.['content-range'] ?? '')?.[1] ?? received());
      if (start !== received()) return json(416, { errors: [{ code: 'BLOB_UPLOAD_INVALID' }] });
      session.parts.push(body);
      // A new session URL per chunk, as some registries do, so the client must follow Location.
      this.uploads.delete(id);
      const next = `s${this.nextId++}`;
      this.uploads.set(next, session);
      return { status: 202, headers: { location: `/v2/${repo}/blobs/uploads/${next}`, range: `0-${received() - 1}` } };
    }
    if (req.method === 'PUT') {
      session.parts.push(body);
      const all = Buffer.concat(session.parts);
      const digest = url.searchParams.get('digest');
      this.uploads.delete(id);
      if (digest !== sha256Of(all)) return json(400, { errors: [{ code: 'DIGEST_INVALID' }] });
      this.repoBlobs(repo).set(digest, all);
      return { status: 201, headers: { 'docker-content-digest': digest } };
    }
    return { status: 405 };
  }
}

/**
 * Serve `route` over HTTP on a loopback port, for tests that need a whole RegistryClient (the
 * endpoints, commit). Returns the `host:port` and a close function.
 */
export async function serveRoute(route: FakeRoute): Promise<{ host: string; close: () => Promise<void> }> {
  const server = createServer(async (req, res) => {
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
    const spec: RequestSpec = {
      method: req.method as RequestSpec['method'],
      url: `http://${req.headers.host}${req.url}`,
      what: 'test request',
      headers,
    };
    if (parts.length > 0) spec.body = Buffer.concat(parts);
    const r = await route(spec);
    const chunks = r.body === undefined ? [] : Array.isArray(r.body) ? r.body : [r.body];
    const body = Buffer.concat(chunks);
    res.writeHead(r.status, { 'content-length': String(body.length), ...r.headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${a.port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
