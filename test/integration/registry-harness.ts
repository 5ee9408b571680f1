// Test harness: Debian's `docker-registry serve` (distribution 2.8) on a free loopback port with a
// temporary storage folder, in three auth modes — none, htpasswd Basic (bcrypt), and token auth
// backed by a small token server started here (RS256 JWTs whose x5c certificate is the registry's
// rootcertbundle). Optionally HTTPS with a CA made for the run. `stop()` kills by PID and removes
// every temporary file.
//
//   describe.skipIf(!haveRegistry('my tests'))(…)   // skips saying why, or fails when CI is set
//   const reg = await startRegistry({ auth: 'token' });
//   try { … new RegistryClient({ credentials: reg.credentials }) … reg.host … } finally { await reg.stop(); }

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createPrivateKey, randomBytes, randomUUID, sign } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requireOrSkip } from '../require.js';

const run = promisify(execFile);

export type RegistryAuthMode = 'none' | 'htpasswd' | 'token';

export interface StartRegistryOptions {
  /** Authentication mode (default 'none'). */
  auth?: RegistryAuthMode;
  /** Accounts for htpasswd/token modes (default `{ dadi: 'dadi-test-password' }`). */
  users?: Record<string, string>;
  /** Token mode: `expires_in` the token server announces (seconds, default 300). */
  tokenExpiresIn?: number;
  /** Token mode: real lifetime written in the JWT `exp` (seconds, default = tokenExpiresIn). */
  tokenLifetime?: number;
  /** Token mode: what a user may do on a repository (default: everything asked for). */
  grant?: (user: string | undefined, type: string, name: string, actions: string[]) => string[];
  /** Serve HTTPS with a certificate signed by a CA made for this run (`ca` on the result). */
  tls?: boolean;
  /** With `tls`: require client certificates signed by that CA (`clientCert`/`clientKey` on the result). */
  clientCert?: boolean;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` — use as the registry part of references. */
  host: string;
  /** `http(s)://127.0.0.1:PORT` */
  url: string;
  auth: RegistryAuthMode;
  users: Record<string, string>;
  /** The first user's credentials (undefined in mode 'none'). */
  credentials: { username: string; password: string } | undefined;
  /** PEM of the CA that signed the HTTPS certificate (tls mode). */
  ca?: string;
  /** PEM client certificate and key accepted by the registry (clientCert mode). */
  clientCert?: string;
  clientKey?: string;
  /** The registry process id. */
  pid: number;
  /** Token mode: requests seen by the token server, newest last, with the token each one got. */
  tokenRequests: Array<{ user: string | undefined; scopes: string[]; granted: boolean; token?: string }>;
  /** Temporary folder holding storage, config and keys. */
  dir: string;
  /** Registry stderr so far (for debugging a failing test). */
  logs(): string;
  stop(): Promise<void>;
}

/** The distribution 2.8 config (filesystem storage, quiet logs) as YAML lines; callers append tls/auth. */
export function registryConfigLines(storageDir: string, addr: string): string[] {
  return [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${addr}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
  ];
}

/** True when `docker-registry` is installed; otherwise skips (or, in CI, fails) the caller's tests. */
export function haveRegistry(what: string): boolean {
  const absent = registryBinary() === undefined;
  return requireOrSkip(
    what,
    absent ? 'docker-registry is not installed (apt-get install docker-registry apache2-utils)' : undefined,
  );
}

function registryBinary(): string | undefined {
  for (const p of ['/usr/bin/docker-registry', '/usr/local/bin/docker-registry']) if (existsSync(p)) return p;
  return undefined;
}

/** A free TCP port on 127.0.0.1 (closed again before returning). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function bcryptLine(user: string, password: string): Promise<string> {
  const { stdout } = await run('htpasswd', ['-Bbn', user, password]);
  return stdout.trim();
}

/** A self-signed certificate + key for signing tokens. */
async function makeSigningCert(dir: string): Promise<{ certPath: string; keyPem: string; certDerB64: string }> {
  const certPath = join(dir, 'token.crt');
  const keyPath = join(dir, 'token.key');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '2',
    '-subj',
    '/CN=dadi-test-token',
  ]);
  const pem = await readFile(certPath, 'utf8');
  const der = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  return { certPath, keyPem: await readFile(keyPath, 'utf8'), certDerB64: der };
}

/** openssl with a space-separated argument string (paths here never contain spaces). */
function openssl(args: string): Promise<unknown> {
  return run('openssl', args.split(' '));
}

/** A CA and a server certificate for 127.0.0.1 signed by it (and a client certificate if asked). */
async function makeTlsCerts(
  dir: string,
  client: boolean,
): Promise<{ ca: string; caPath: string; certPath: string; keyPath: string; clientCert?: string; clientKey?: string }> {
  const f = (name: string) => join(dir, name);
  await openssl(
    `req -x509 -newkey rsa:2048 -nodes -keyout ${f('ca.key')} -out ${f('ca.crt')} -days 2 -subj /CN=dadi-test-ca`,
  );
  await openssl(`req -newkey rsa:2048 -nodes -keyout ${f('server.key')} -out ${f('server.csr')} -subj /CN=127.0.0.1`);
  await writeFile(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  const signWithCa = `-CA ${f('ca.crt')} -CAkey ${f('ca.key')} -CAcreateserial -days 2`;
  await openssl(`x509 -req -in ${f('server.csr')} ${signWithCa} -out ${f('server.crt')} -extfile ${f('server.ext')}`);
  const out: Awaited<ReturnType<typeof makeTlsCerts>> = {
    ca: await readFile(f('ca.crt'), 'utf8'),
    caPath: f('ca.crt'),
    certPath: f('server.crt'),
    keyPath: f('server.key'),
  };
  if (client) {
    await openssl(
      `req -newkey rsa:2048 -nodes -keyout ${f('client.key')} -out ${f('client.csr')} -subj /CN=dadi-test-client`,
    );
    await writeFile(f('client.ext'), 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
    await openssl(`x509 -req -in ${f('client.csr')} ${signWithCa} -out ${f('client.crt')} -extfile ${f('client.ext')}`);
    out.clientCert = await readFile(f('client.crt'), 'utf8');
    out.clientKey = await readFile(f('client.key'), 'utf8');
  }
  return out;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

interface TokenServer {
  url: string;
  server: Server;
}

/** The token server of token mode: checks Basic credentials, grants scopes, signs RS256 JWTs. */
async function startTokenServer(
  opts: StartRegistryOptions,
  users: Record<string, string>,
  signing: { keyPem: string; certDerB64: string },
  service: string,
  issuer: string,
  log: TestRegistry['tokenRequests'],
): Promise<TokenServer> {
  const key = createPrivateKey(signing.keyPem);
  const expiresIn = opts.tokenExpiresIn ?? 300;
  const lifetime = opts.tokenLifetime ?? expiresIn;
  const server = createHttpServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const scopes = u.searchParams
      .getAll('scope')
      .flatMap((s) => s.split(' '))
      .filter(Boolean);
    let user: string | undefined;
    const authz = req.headers.authorization;
    if (authz?.startsWith('Basic ')) {
      const text = Buffer.from(authz.slice(6), 'base64').toString('utf8');
      const i = text.indexOf(':');
      const name = text.slice(0, i);
      if (i < 0 || users[name] === undefined || users[name] !== text.slice(i + 1)) {
        log.push({ user: name, scopes, granted: false });
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
        return;
      }
      user = name;
    }
    if (u.pathname !== '/token' || req.method !== 'GET') {
      res.writeHead(404).end();
      return;
    }
    const access = scopes.map((s) => {
      const [type = '', ...rest] = s.split(':');
      const actions = (rest.pop() ?? '').split(',').filter(Boolean);
      const name = rest.join(':');
      const granted = opts.grant ? opts.grant(user, type, name, actions) : user ? actions : [];
      return { type, name, actions: granted };
    });
    const now = Math.floor(Date.now() / 1000);
    const head = { alg: 'RS256', typ: 'JWT', x5c: [signing.certDerB64] };
    const claims = {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + lifetime,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const input = `${b64url(JSON.stringify(head))}.${b64url(JSON.stringify(claims))}`;
    const token = `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`;
    log.push({ user, scopes, granted: true, token });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: expiresIn,
        issued_at: new Date(now * 1000).toISOString(),
      }),
    );
  });
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return { url: `http://127.0.0.1:${port}/token`, server };
}

async function waitReady(
  url: string,
  child: ChildProcess,
  ca: string | undefined,
  client: { cert?: string; key?: string },
  logs: () => string,
): Promise<void> {
  const until = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}): ${logs().slice(-2000)}`);
    }
    const status = await new Promise<number>((resolve) => {
      const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(
        `${url}/v2/`,
        { method: 'GET', ca, cert: client.cert, key: client.key, timeout: 1000 },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    if (status === 200 || status === 401) return;
    if (Date.now() > until) throw new Error(`docker-registry did not become ready at ${url}: ${logs().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start a registry. Always pair with `stop()` in a finally/afterAll. */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const bin = registryBinary();
  if (!bin) throw new Error('docker-registry is not installed');
  const mode = opts.auth ?? 'none';
  const users = opts.users ?? { dadi: 'dadi-test-password' };
  const dir = await mkdtemp(join(tmpdir(), 'dadi-registry-'));
  let child: ChildProcess | undefined;
  let token: TokenServer | undefined;
  const tokenRequests: TestRegistry['tokenRequests'] = [];
  let stderr = '';
  let registryPid = 0;
  const killOnExit = () => {
    for (const pid of [registryPid, child?.pid ?? 0]) {
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    }
  };
  const stop = async () => {
    process.off('exit', killOnExit);
    if (child?.pid && child.exitCode === null && child.signalCode === null) {
      const c = child;
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      // Closing the watchdog's stdin makes it stop the registry (SIGTERM) and exit.
      c.stdin?.end();
      const t = setTimeout(killOnExit, 3000);
      await exited;
      clearTimeout(t);
    }
    if (token) {
      const closed = new Promise<void>((resolve) => token!.server.close(() => resolve()));
      token.server.closeAllConnections();
      await closed;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const lines = registryConfigLines(join(dir, 'storage'), `127.0.0.1:${port}`);
    let ca: string | undefined;
    let client: { cert?: string; key?: string } = {};
    if (opts.tls) {
      const t = await makeTlsCerts(dir, !!opts.clientCert);
      ca = t.ca;
      lines.push('  tls:', `    certificate: ${t.certPath}`, `    key: ${t.keyPath}`);
      if (opts.clientCert) {
        lines.push('    clientcas:', `      - ${t.caPath}`);
        client = { cert: t.clientCert!, key: t.clientKey! };
      }
    }
    if (mode === 'htpasswd') {
      const path = join(dir, 'htpasswd');
      const entries = await Promise.all(Object.entries(users).map(([u, p]) => bcryptLine(u, p)));
      await writeFile(path, `${entries.join('\n')}\n`);
      lines.push('auth:', '  htpasswd:', '    realm: dadi-test', `    path: ${path}`);
    } else if (mode === 'token') {
      const signing = await makeSigningCert(dir);
      const service = 'dadi-test-registry';
      const issuer = 'dadi-test-issuer';
      token = await startTokenServer(opts, users, signing, service, issuer, tokenRequests);
      lines.push(
        'auth:',
        '  token:',
        `    realm: ${token.url}`,
        `    service: ${service}`,
        `    issuer: ${issuer}`,
        `    rootcertbundle: ${signing.certPath}`,
      );
    }
    const config = join(dir, 'config.yml');
    await writeFile(config, `${lines.join('\n')}\n`);
    // A shell watchdog runs the registry and kills it when its stdin closes: on stop(), and also
    // when this process dies without running exit hooks (the kernel closes the pipe).
    const watchdog = '"$1" serve "$2" & p=$!; echo $p; cat >/dev/null; kill $p 2>/dev/null; wait $p';
    child = spawn('sh', ['-c', watchdog, 'sh', bin, config], { stdio: ['pipe', 'pipe', 'pipe'] });
    process.on('exit', killOnExit);
    registryPid = await new Promise<number>((resolve, reject) => {
      let out = '';
      child!.stdout!.on('data', (b: Buffer) => {
        out += b.toString('utf8');
        const line = out.split('\n')[0];
        if (out.includes('\n') && line) resolve(Number(line));
      });
      child!.once('exit', (code) =>
        reject(new Error(`docker-registry watchdog exited (${code}): ${stderr.slice(-2000)}`)),
      );
    });
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString('utf8');
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    });
    const scheme = opts.tls ? 'https' : 'http';
    const url = `${scheme}://127.0.0.1:${port}`;
    await waitReady(url, child, ca, client, () => stderr);
    const first = Object.entries(users)[0];
    const reg: TestRegistry = {
      host: `127.0.0.1:${port}`,
      url,
      auth: mode,
      users,
      credentials: mode === 'none' || !first ? undefined : { username: first[0], password: first[1] },
      pid: registryPid,
      tokenRequests,
      dir,
      logs: () => stderr,
      stop,
    };
    if (ca) reg.ca = ca;
    if (client.cert) {
      reg.clientCert = client.cert;
      reg.clientKey = client.key!;
    }
    return reg;
  } catch (e) {
    await stop();
    throw e;
  }
}
