// `dadi login` / `dadi logout`: verify credentials against a registry, then store them the way
// docker does (config.json `auths`, mode 0600, or the configured `credsStore` helper).

import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DadiError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-output.js';
import { RegistryClient, type RegistryClientOptions } from './client.js';
import {
  type Credentials,
  type DockerConfig,
  dockerConfigPath,
  normaliseAuthKey,
  readDockerConfig,
} from './credentials.js';
import { splitHost } from './reference.js';

export interface LoginOptions extends Omit<RegistryClientOptions, 'credentials'> {
  /** config.json to write (default `dockerConfigPath()`). */
  configPath?: string;
  /** Store in config.json even when a `credsStore` helper is configured. */
  ignoreCredsStore?: boolean;
}

/**
 * Verify `creds` against `registry` (GET /v2/ with Basic or a Bearer token) and save them.
 * Returns where they were stored. A wrong password throws EAUTH naming the registry.
 *
 * ```ts
 * await login('127.0.0.1:5000', { username: 'u', password: 'p' });
 * ```
 */
export async function login(
  registry: string,
  creds: Credentials,
  opts: LoginOptions = {},
): Promise<{ stored: 'file' | 'helper'; path: string }> {
  splitHost(registry); // validates
  const client = new RegistryClient({ ...opts, credentials: creds });
  try {
    await client.ping(registry);
  } finally {
    await client.close();
  }
  const path = opts.configPath ?? dockerConfigPath();
  const config = await readDockerConfig(path);
  const helper = config.credHelpers?.[registry] ?? (opts.ignoreCredsStore ? undefined : config.credsStore);
  if (helper) {
    await storeWithHelper(helper, registry, creds);
    return { stored: 'helper', path: `docker-credential-${helper}` };
  }
  const auths = { ...(config.auths ?? {}) };
  for (const k of Object.keys(auths)) if (normaliseAuthKey(k) === registry.toLowerCase()) delete auths[k];
  auths[registry] = { auth: Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64') };
  await writeConfig(path, { ...config, auths });
  return { stored: 'file', path };
}

/** Remove stored credentials for `registry` from config.json. True when something was removed. */
export async function logout(registry: string, opts: { configPath?: string } = {}): Promise<boolean> {
  const path = opts.configPath ?? dockerConfigPath();
  const config = await readDockerConfig(path);
  const auths = { ...(config.auths ?? {}) };
  let removed = false;
  for (const k of Object.keys(auths)) {
    if (normaliseAuthKey(k) === registry.toLowerCase()) {
      delete auths[k];
      removed = true;
    }
  }
  if (removed) await writeConfig(path, { ...config, auths });
  return removed;
}

/** Write config.json atomically with mode 0600. */
async function writeConfig(path: string, config: DockerConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, `${JSON.stringify(config, null, '\t')}\n`, { mode: 0o600 });
}

function storeWithHelper(helper: string, registry: string, creds: Credentials): Promise<void> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['store'], { stdio: ['pipe', 'ignore', 'pipe'] });
    const err: Buffer[] = [];
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) =>
      reject(
        new DadiError('EAUTH', `${registry}: cannot run ${program}: ${(e as NodeJS.ErrnoException).code ?? e.message}`),
      ),
    );
    child.on('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new DadiError(
            'EAUTH',
            `${registry}: ${program} store failed: ${Buffer.concat(err).toString('utf8').trim().slice(0, 200) || `exit ${code}`}`,
          ),
        );
    });
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify({ ServerURL: registry, Username: creds.username, Secret: creds.password }));
  });
}
