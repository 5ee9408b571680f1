// P2P distribution on loopback (issue #13): one registry (htpasswd), one `dadi p2p root`, four
// `dadi daemon`s with their own state, cache and agent port. All read the same image through their
// daemon and get the right bytes while the registry sends about one copy; a peer serving wrong
// bytes is caught and bypassed; a killed parent is replaced; with the root down the daemons read
// the registry and count it; and a requester without credentials gets nothing. Also overlaybd's
// proxy URL form served by an agent. Every process is stopped by PID in afterAll.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { P2PCountersSnapshot } from '../../src/p2p/counters.js';
import { seededRandom } from '../../src/p2p/random.js';
import { basicAuthorization } from '../../src/registry/index.js';
import type { DaemonStatus } from '../../src/runtime/status.js';
import { runDadi } from '../cli.js';
import { missing, requireOrSkip } from '../require.js';
import { TEST_SEED } from '../seed.js';
import { pushImage } from './push-image.js';
import { freePort, haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { imageToLayer, makeExt4 } from './runtime-helpers.js';

const HAVE =
  haveRegistry('p2p distribution') &&
  requireOrSkip('p2p distribution', missing({ tools: ['mkfs.ext4'], hint: 'apt-get install e2fsprogs' }));
const MiB = 1 << 20;
const ENTRY = resolve(import.meta.dirname, '../../src/cli/entry.ts');

interface Proc {
  name: string;
  child: ChildProcess;
  stderr: () => string;
}

interface Host {
  id: string;
  port: number;
  state: string;
  cache: string;
  proc?: Proc;
}

interface Image {
  ref: string;
  layer: { digest: string; size: number };
  /** The file's text (hex of seeded bytes, so that `dadi cat` output compares as a string). */
  content: string;
}

function startProc(name: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d.toString();
  });
  return { name, child, stderr: () => err };
}

async function stopProc(p: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill(signal);
  const late = await Promise.race([exited.then(() => false), sleep(10_000).then(() => true)]);
  if (late) {
    p.child.kill('SIGKILL');
    await exited;
  }
}

/** What the root's and the agents' status answers carry that the tests look at. */
interface Status {
  counters: P2PCountersSnapshot;
}

async function getJson(url: string): Promise<Status> {
  const res = await request(url);
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${await res.body.text()}`);
  return (await res.body.json()) as Status;
}

/** Wait (bounded) until `url` answers 200. */
async function waitReady(url: string, p: Proc): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited: ${p.stderr()}`);
    try {
      await getJson(url);
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`${p.name} did not answer ${url}: ${p.stderr()}`);
}

describe.skipIf(!HAVE)('P2P distribution on loopback', () => {
  let dir: string;
  let reg: TestRegistry;
  let rootPort: number;
  let rootCache: string;
  let root: Proc | undefined;
  const hosts: Host[] = [];
  const images: Image[] = [];
  let evil: Server | undefined;
  let env: NodeJS.ProcessEnv;
  const rootUrl = () => `http://127.0.0.1:${rootPort}`;

  const startRoot = async () => {
    root = startProc(
      'root',
      ['p2p', 'root', '--listen', `127.0.0.1:${rootPort}`, '--cache', rootCache, '--fanout', '2', '--root-fanout', '1'],
      env,
    );
    await waitReady(`${rootUrl()}/p2p/v1/status`, root);
  };

  const startHost = async (h: Host) => {
    h.proc = startProc(
      h.id,
      [
        'daemon',
        '--state',
        h.state,
        '--cache-dir',
        h.cache,
        '--p2p-root',
        rootUrl(),
        '--p2p-listen',
        `127.0.0.1:${h.port}`,
        '--p2p-host-id',
        h.id,
      ],
      // Set, so the daemon does not re-run itself in a child: the PID we kill is the agent's.
      { ...env, DADI_STATE: h.state, UV_THREADPOOL_SIZE: '16' },
    );
    await waitReady(`http://127.0.0.1:${h.port}/p2p/v1/status`, h.proc);
  };

  const cat = (h: Host, img: Image) =>
    runDadi(['cat', img.ref, '/data/file.bin'], { env: { ...env, DADI_STATE: h.state, DADI_CACHE_DIR: h.cache } });
  const agent = (h: Host) => getJson(`http://127.0.0.1:${h.port}/p2p/v1/status`);
  const rootStatus = () => getJson(`${rootUrl()}/p2p/v1/status`);

  beforeAll(async () => {
    dir = await mkdtemp('/var/tmp/dadi-p2p-');
    reg = await startRegistry({ auth: 'htpasswd' });
    env = {
      DADI_REGISTRY_USER: reg.credentials!.username,
      DADI_REGISTRY_PASSWORD: reg.credentials!.password,
      DADI_PULL: 'off',
    };
    // pushImage's client reads credentials from the environment.
    const saved = { u: process.env.DADI_REGISTRY_USER, p: process.env.DADI_REGISTRY_PASSWORD };
    process.env.DADI_REGISTRY_USER = env.DADI_REGISTRY_USER;
    process.env.DADI_REGISTRY_PASSWORD = env.DADI_REGISTRY_PASSWORD;
    try {
      const random = seededRandom(TEST_SEED);
      for (let k = 0; k < 5; k++) {
        const bytes = Buffer.alloc(2 * MiB + 1234 * k);
        for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
        const content = bytes.toString('hex');
        const rootfs = join(dir, `rootfs${k}`);
        await mkdir(join(rootfs, 'data'), { recursive: true });
        await writeFile(join(rootfs, 'data/file.bin'), content);
        await makeExt4(rootfs, join(dir, `disk${k}.img`), '16M');
        await imageToLayer(join(dir, `disk${k}.img`), join(dir, `layer${k}.tar`));
        // Image 1 (the wrong-bytes test) publishes chunk digests; the others are checked by ZFile CRCs.
        const pushed = await pushImage(
          reg.host,
          `dadi/p2p${k}`,
          'v1',
          [join(dir, `layer${k}.tar`)],
          {},
          {
            chunkDigests: k === 1,
          },
        );
        images.push({ ref: pushed.ref, layer: pushed.layers[0]!, content });
      }
    } finally {
      if (saved.u === undefined) delete process.env.DADI_REGISTRY_USER;
      else process.env.DADI_REGISTRY_USER = saved.u;
      if (saved.p === undefined) delete process.env.DADI_REGISTRY_PASSWORD;
      else process.env.DADI_REGISTRY_PASSWORD = saved.p;
    }
    rootPort = await freePort();
    rootCache = join(dir, 'root-cache');
    await startRoot();
    for (let i = 0; i < 4; i++) {
      const h: Host = {
        id: `host${i}`,
        port: await freePort(),
        state: join(dir, `h${i}`, 'state'),
        cache: join(dir, `h${i}`, 'cache'),
      };
      hosts.push(h);
    }
    await Promise.all(hosts.map(startHost));
  });

  afterAll(async () => {
    try {
      await Promise.all(hosts.map((h) => stopProc(h.proc)));
      await stopProc(root);
      await new Promise((r) => (evil ? evil.close(r) : r(undefined)));
    } finally {
      await reg?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  it('every host reads the image right while the registry sends about one copy', async () => {
    const img = images[0]!;
    const first = await cat(hosts[0]!, img);
    expect(first.code, first.stderr + hosts[0]!.proc!.stderr()).toBe(0);
    const rest = await Promise.all(hosts.slice(1).map((h) => cat(h, img)));
    for (const [k, r] of [first, ...rest].entries()) {
      expect(r.code, `${hosts[k]!.id}: ${r.stderr} ${hosts[k]!.proc!.stderr()}`).toBe(0);
      expect(r.stdout === img.content).toBe(true);
    }
    const rs = await rootStatus();
    const agents = await Promise.all(hosts.map(agent));
    const fromRegistry = rs.counters.bytes.registry + agents.reduce((s, a) => s + a.counters.bytes.registry, 0);
    // The whole layer is at most one copy; reads touch most of it (the file is most of the disk).
    expect(fromRegistry).toBeGreaterThan(img.layer.size / 2);
    expect(fromRegistry).toBeLessThanOrEqual(img.layer.size);
    expect(agents.reduce((s, a) => s + a.counters.registryFallbacks, 0)).toBe(0);
    // The tree is a chain under a root with one child: someone read from a peer, someone served.
    expect(agents.reduce((s, a) => s + a.counters.bytes.peer, 0)).toBeGreaterThan(0);
    expect(agents.reduce((s, a) => s + a.counters.servedBytes, 0)).toBeGreaterThan(0);
    // `dadi status --json` of each daemon reports its agent's counters, and times every chunk it got
    // from the root or a peer in the fetch histogram of that source. Pushes may still arrive:
    // the status must fall between the agent's counters read before and after it.
    let timedChunks = 0;
    for (const h of hosts) {
      const before = (await agent(h)).counters;
      const st = await runDadi(['status', '--json', '--state', h.state]);
      const after = (await agent(h)).counters;
      expect(st.code, st.stderr).toBe(0);
      const status = JSON.parse(st.stdout) as DaemonStatus;
      for (const source of ['registry', 'root', 'peer'] as const) {
        const got = status.p2p!.bytes[source];
        expect(got, `${h.id} ${source}`).toBeGreaterThanOrEqual(before.bytes[source]);
        expect(got, `${h.id} ${source}`).toBeLessThanOrEqual(after.bytes[source]);
      }
      for (const source of ['root', 'peer'] as const) {
        // Every chunk fetched (not pushed) from the source is timed once.
        const timed = status.fetches.find((x) => x.source === source)!.count;
        timedChunks += timed;
        expect(timed, `${h.id} ${source}`).toBeGreaterThanOrEqual(before.requests[source]);
        expect(timed, `${h.id} ${source}`).toBeLessThanOrEqual(after.requests[source]);
      }
    }
    expect(timedChunks).toBeGreaterThan(0);
  });

  it('catches a peer serving wrong bytes, blames it and reads the right bytes elsewhere', async () => {
    const img = images[1]!;
    const port = await freePort();
    let served = 0;
    evil = createServer((req, res) => {
      served++;
      const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
      const n = m ? Number(m[2]) - Number(m[1]) + 1 : 0;
      const junk = Buffer.alloc(n, 0x5a);
      res.writeHead(206, { 'content-length': n, 'content-range': `bytes ${m?.[1]}-${m?.[2]}/${img.layer.size}` });
      res.end(junk);
    });
    await new Promise<void>((r) => evil!.listen(port, '127.0.0.1', () => r()));
    // The malicious host has access (valid credentials) and joins first: the next host goes under it.
    const auth = basicAuthorization(reg.credentials!);
    const [registry, ...repo] = img.ref.split(':v1')[0]!.split('/');
    const join = await request(`${rootUrl()}/p2p/v1/join`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        blob: { registry, repository: repo.join('/'), digest: img.layer.digest },
        host: { id: 'evil', address: `http://127.0.0.1:${port}` },
      }),
    });
    expect(join.statusCode).toBe(200);
    await join.body.dump();
    const h = hosts[1]!;
    const before = (await agent(h)).counters.corruptChunks;
    const r = await cat(h, img);
    expect(r.code, r.stderr + h.proc!.stderr()).toBe(0);
    expect(r.stdout === img.content).toBe(true);
    expect(served).toBeGreaterThan(0);
    expect((await agent(h)).counters.corruptChunks).toBeGreaterThan(before);
    // Checked against the image's chunk digest list (sha256), not only ZFile CRCs.
    expect(h.proc!.stderr()).toMatch(/wrong bytes from peer evil: .*chunk \d+ .*hashes to/);
  });

  it('re-parents a host whose parent was killed', async () => {
    const img = images[2]!;
    const [a, b] = [hosts[2]!, hosts[3]!];
    const r1 = await cat(a, img);
    expect(r1.code, r1.stderr).toBe(0);
    await stopProc(a.proc, 'SIGKILL');
    const before = (await agent(b)).counters.reparents;
    const r2 = await cat(b, img);
    expect(r2.code, r2.stderr + b.proc!.stderr()).toBe(0);
    expect(r2.stdout === img.content).toBe(true);
    expect((await agent(b)).counters.reparents, b.proc!.stderr()).toBeGreaterThan(before);
    await startHost(a); // a fresh daemon on the same cache for the tests after
  });

  it('gives a requester without credentials nothing, and serves the overlaybd proxy form to one with them', async () => {
    const img = images[0]!;
    const [registry, ...repo] = img.ref.split(':v1')[0]!.split('/');
    const blob = { registry, repository: repo.join('/'), digest: img.layer.digest };
    const joinAs = (authorization?: string) =>
      request(`${rootUrl()}/p2p/v1/join`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body: JSON.stringify({ blob, host: { id: 'stranger', address: 'http://127.0.0.1:9' } }),
      });
    const anon = await joinAs();
    expect(anon.statusCode).toBe(403);
    expect(await anon.body.text()).not.toMatch(/grant/);
    const wrong = await joinAs(basicAuthorization({ username: 'dadi', password: 'wrong' }));
    expect(wrong.statusCode).toBe(403);
    await wrong.body.dump();
    const q = new URLSearchParams(blob).toString();
    for (const base of [rootUrl(), `http://127.0.0.1:${hosts[0]!.port}`]) {
      const r = await request(`${base}/p2p/v1/blob?${q}`, { headers: { range: 'bytes=0-1023' } });
      expect(r.statusCode).toBe(403);
      expect((await r.body.arrayBuffer()).byteLength).toBeLessThan(1024);
    }
    const upstream = `http://${reg.host}/v2/${blob.repository}/blobs/${blob.digest}`;
    const proxy = `http://127.0.0.1:${hosts[0]!.port}/dadip2p/${upstream}`;
    const denied = await request(proxy, { headers: { range: 'bytes=0-1023' } });
    expect(denied.statusCode).toBe(403);
    await denied.body.dump();
    const ok = await request(proxy, {
      headers: { range: `bytes=${MiB - 10}-${MiB + 9}`, authorization: basicAuthorization(reg.credentials!) },
    });
    expect(ok.statusCode).toBe(206);
    const got = Buffer.from(await ok.body.arrayBuffer());
    const direct = await request(upstream, {
      headers: { range: `bytes=${MiB - 10}-${MiB + 9}`, authorization: basicAuthorization(reg.credentials!) },
    });
    expect(got.equals(Buffer.from(await direct.body.arrayBuffer()))).toBe(true);
  });

  it('pushes the chunks a parent fetches to the child that joined under it (pull-push)', async () => {
    const img = images[4]!;
    const [parent, child] = [hosts[1]!, hosts[2]!];
    // Both join the blob's tree by reading only the filesystem's metadata; the child goes under the parent.
    for (const h of [parent, child]) {
      const st = await runDadi(['stat', img.ref, '/data/file.bin'], {
        env: { ...env, DADI_STATE: h.state, DADI_CACHE_DIR: h.cache },
      });
      expect(st.code, st.stderr).toBe(0);
    }
    const before = (await agent(child)).counters.receivedPushes;
    const r = await cat(parent, img);
    expect(r.code, r.stderr).toBe(0);
    // Bounded wait for the pushes in flight to land.
    for (let i = 0; i < 50 && (await agent(child)).counters.receivedPushes === before; i++) await sleep(100);
    const pushedTo = (await agent(child)).counters.receivedPushes - before;
    expect(pushedTo, child.proc!.stderr()).toBeGreaterThan(0);
    expect((await agent(parent)).counters.pushedChunks).toBeGreaterThan(0);
    const c = await cat(child, img);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout === img.content).toBe(true);
  });

  it('reads from the registry when the root is down, and counts it', async () => {
    await stopProc(root);
    const img = images[3]!;
    const h = hosts[0]!;
    const r = await cat(h, img);
    expect(r.code, r.stderr + h.proc!.stderr()).toBe(0);
    expect(r.stdout === img.content).toBe(true);
    const a = await agent(h);
    expect(a.counters.registryFallbacks).toBeGreaterThan(0);
    expect(a.counters.bytes.registry).toBeGreaterThan(0);
    expect(h.proc!.stderr()).toMatch(/root .* unusable .*reading from the registry/);
  });
});
