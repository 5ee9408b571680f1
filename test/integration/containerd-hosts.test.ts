// Issue #12: containerd's registry hosts configuration (hosts.toml under a config folder) and
// docker's config.json credentials, honoured by `dadi pull --containerd-address` and by the lazy
// reads the daemon makes for the dadi snapshotter. The registry serves HTTPS with a CA made for
// the run and wants a password; hosts.toml names the CA and lists two mirrors before the server:
// one that cannot be reached and a plain-HTTP one. An image only the mirror holds starts from the
// mirror; an image only the server holds starts after both mirrors are passed over.

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDadi } from '../cli.js';
import {
  type Containerd,
  haveContainerd,
  type SnapshotterProcess,
  startContainerd,
  startSnapshotter,
  tearDownContainerd,
} from './containerd-harness.js';
import { pushImage } from './push-image.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { buildRootfs, imageToLayer, makeExt4 } from './runtime-helpers.js';

const WHAT = 'containerd hosts.toml';
const HAVE = haveRegistry(WHAT) && haveContainerd(WHAT);

describe.skipIf(!HAVE)('dadi snapshotter and dadi pull with hosts.toml, TLS and credentials', () => {
  let root: string;
  /** The registry the images are named after: HTTPS (CA made for the run), htpasswd. */
  let server: TestRegistry;
  /** A plain-HTTP mirror without auth. */
  let mirror: TestRegistry;
  let ctrd: Containerd;
  let snap: SnapshotterProcess | undefined;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    root = await mkdtemp('/var/tmp/dadi-ctrd-hosts-');
    server = await startRegistry({ auth: 'htpasswd', tls: true });
    mirror = await startRegistry({ auth: 'none' });
    const rootfs = join(root, 'rootfs');
    await buildRootfs(rootfs);
    await writeFile(join(rootfs, 'data/unread.bin'), randomBytes(4 << 20));
    await makeExt4(rootfs, join(root, 'disk.img'));
    await imageToLayer(join(root, 'disk.img'), join(root, 'layer.tar'));
    const layer = [join(root, 'layer.tar')];
    const cfg = { Env: ['PATH=/usr/bin:/bin'] };
    // Named after the server, held only by it (over TLS, with the password) or only by the mirror.
    await pushImage(server.host, 'dadi/on-server', 'v1', layer, cfg, {
      client: { ca: server.ca!, forceHttps: true, credentials: server.credentials },
    });
    await pushImage(mirror.host, 'dadi/on-mirror', 'v1', layer, cfg);

    const hostsDir = join(root, 'certs.d');
    await mkdir(join(hostsDir, server.host), { recursive: true });
    await writeFile(join(hostsDir, server.host, 'ca.pem'), server.ca!);
    await writeFile(
      join(hostsDir, server.host, 'hosts.toml'),
      [
        `server = "https://${server.host}"`,
        'ca = "ca.pem"',
        `[host."http://127.0.0.1:${await closedPort()}"]`,
        '  capabilities = ["pull", "resolve"]',
        `[host."http://${mirror.host}"]`,
        '  capabilities = ["pull", "resolve"]',
        '',
      ].join('\n'),
    );
    const dockerConfig = join(root, 'docker');
    await mkdir(dockerConfig);
    const { username, password } = server.credentials!;
    await writeFile(
      join(dockerConfig, 'config.json'),
      JSON.stringify({ auths: { [server.host]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } } }),
    );
    // The snapshotter's daemon (started on demand) inherits these: the same hosts and credentials.
    env = {
      DADI_STATE: join(root, 'dadi-state'),
      DADI_CACHE_DIR: join(root, 'cache'),
      DADI_HOSTS_DIR: hostsDir,
      DOCKER_CONFIG: dockerConfig,
    };
    snap = await startSnapshotter(join(root, 'snap.sock'), join(root, 'snapshotter'), env);
    ctrd = await startContainerd(join(root, 'containerd'), join(root, 'snap.sock'));
  }, 120_000);

  afterAll(() => tearDownContainerd({ root, stateDir: env?.DADI_STATE, snap, ctrd }, [mirror, server]));

  /**
   * Pulled by the snapshotter, which finds the hosts folder and the password in its own
   * environment (the CLI's has neither), or in the CLI's process with them in its environment.
   */
  const pullAndRun = async (ref: string, id: string, by: 'snapshotter' | 'in-process') => {
    const pulled =
      by === 'snapshotter'
        ? await runDadi([
            'pull',
            '--containerd-address',
            ctrd.socket,
            '-n',
            'dadi-test',
            '--snapshotter-address',
            join(root, 'snap.sock'),
            ref,
          ])
        : await runDadi(['pull', '--containerd-address', ctrd.socket, '-n', 'dadi-test', ref], { env });
    expect(pulled.code, `${pulled.stderr}\n${snap?.logs() ?? ''}`).toBe(0);
    const r = await ctrd.ctr(['run', '--rm', '--snapshotter', 'dadi', ref, id, 'cat', '/data/keep.txt']);
    expect(r.code, `${r.stderr}\n${snap?.logs() ?? ''}`).toBe(0);
    return r.stdout;
  };

  it('starts an image over TLS with the CA from hosts.toml and the password from config.json, past both mirrors', async () => {
    expect(await pullAndRun(`${server.host}/dadi/on-server:v1`, 'on-server', 'snapshotter')).toBe('keep me\n');
  }, 120_000);

  it('starts an image only the mirror holds from the mirror', async () => {
    expect(await pullAndRun(`${server.host}/dadi/on-mirror:v1`, 'on-mirror', 'in-process')).toBe('keep me\n');
  }, 120_000);

  it('without the hosts configuration the TLS registry is not trusted, and the error says so', async () => {
    const r = await runDadi(
      ['pull', '--containerd-address', ctrd.socket, '-n', 'dadi-test', `${server.host}/dadi/on-server:v1`],
      { env: { ...env, DADI_HOSTS_DIR: '' } },
    );
    expect(r.code).toBe(1);
    // Loopback registries default to plain HTTP; this one only speaks TLS.
    expect(r.stderr).toMatch(new RegExp(`^dadi: .*${server.host.replace('.', '\\.')}`, 'm'));
  }, 60_000);
});

/** A local port nothing listens on (one just released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const a = s.address();
  await new Promise((r) => s.close(r));
  return typeof a === 'object' && a ? a.port : 0;
}
