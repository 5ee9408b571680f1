// Where registry credentials come from: explicit values, environment variables, docker's
// config.json (`auths`, `credHelpers`, `credsStore` via `docker-credential-<name>` programs).
// Never logs or prints a secret; errors name the registry host only.
//
// Environment: DADI_REGISTRY_USER + DADI_REGISTRY_PASSWORD give credentials for every registry,
// or only for DADI_REGISTRY_HOST when that is set. DOCKER_CONFIG names the folder of config.json
// (default ~/.docker).

import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DadiError } from '../errors.js';

/** A user name and secret. `username === '<token>'` means `password` is an identity (refresh) token. */
export interface Credentials {
  username: string;
  password: string;
}

/** Looks up credentials for a registry host (`host[:port]`); undefined means anonymous. */
export type CredentialProvider = (registry: string) => Promise<Credentials | undefined>;

/** The subset of docker's config.json we read and write. Other fields are kept untouched. */
export interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [extra: string]: unknown;
}

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker'), 'config.json');
}

/** Read docker's config.json; a missing file is an empty config. */
export async function readDockerConfig(path = dockerConfigPath()): Promise<DockerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new DadiError('EIO', `${path}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as DockerConfig;
  } catch (e) {
    throw new DadiError('EFORMAT', `${path}: not a valid docker config: ${(e as Error).message}`);
  }
}

/** Normalise an `auths` key (`https://host/v1/`, `http://host`, `host`) to `host[:port]`. */
export function normaliseAuthKey(key: string): string {
  let k = key.trim().toLowerCase();
  k = k.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  const slash = k.indexOf('/');
  return slash < 0 ? k : k.slice(0, slash);
}

function decodeAuthEntry(
  e: { auth?: string; username?: string; password?: string; identitytoken?: string },
  registry: string,
  path: string,
): Credentials | undefined {
  if (e.identitytoken) return { username: '<token>', password: e.identitytoken };
  if (e.auth) {
    const text = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = text.indexOf(':');
    if (i < 0) throw new DadiError('EFORMAT', `${path}: the auth entry for ${registry} is not base64 of user:password`);
    return { username: text.slice(0, i), password: text.slice(i + 1) };
  }
  if (e.username !== undefined && e.password !== undefined) return { username: e.username, password: e.password };
  return undefined;
}

/**
 * Run `docker-credential-<helper> get` for a registry. Returns undefined when the helper has no
 * entry. The helper's output (which holds the secret) never reaches an error message.
 */
export function runCredentialHelper(
  helper: string,
  registry: string,
  timeoutMs = 10_000,
): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(
        new DadiError(
          'EAUTH',
          `${registry}: cannot run credential helper ${program}: ${(e as NodeJS.ErrnoException).code ?? e.message}`,
        ),
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      if (code !== 0) {
        if (
          /credentials not found/i.test(stdout) ||
          /credentials not found/i.test(Buffer.concat(err).toString('utf8'))
        ) {
          resolve(undefined);
          return;
        }
        const why = Buffer.concat(err).toString('utf8').trim().split('\n')[0]?.slice(0, 200) || `exit code ${code}`;
        reject(new DadiError('EAUTH', `${registry}: credential helper ${program} failed: ${why}`));
        return;
      }
      try {
        const v = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (typeof v.Secret !== 'string') throw new Error('no Secret');
        resolve({ username: v.Username ?? '', password: v.Secret });
      } catch {
        reject(new DadiError('EAUTH', `${registry}: credential helper ${program} gave an unreadable answer`));
      }
    });
    child.stdin.on('error', () => {});
    child.stdin.end(registry);
  });
}

/** Credentials for `registry` from a docker config (credHelpers, then auths, then credsStore). */
export async function credentialsFromDockerConfig(
  registry: string,
  config: DockerConfig,
  path = dockerConfigPath(),
): Promise<Credentials | undefined> {
  const host = registry.toLowerCase();
  const helper = config.credHelpers?.[host] ?? config.credHelpers?.[registry];
  if (helper) return runCredentialHelper(helper, registry);
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (normaliseAuthKey(key) !== host) continue;
    const c = decodeAuthEntry(entry ?? {}, registry, path);
    if (c) return c;
  }
  if (config.credsStore) return runCredentialHelper(config.credsStore, registry);
  return undefined;
}

/** Credentials from DADI_REGISTRY_USER / DADI_REGISTRY_PASSWORD (optionally limited by DADI_REGISTRY_HOST). */
export function credentialsFromEnv(registry: string, env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  const username = env.DADI_REGISTRY_USER;
  const password = env.DADI_REGISTRY_PASSWORD;
  if (username === undefined || password === undefined) return undefined;
  const only = env.DADI_REGISTRY_HOST;
  if (only && normaliseAuthKey(only) !== registry.toLowerCase()) return undefined;
  return { username, password };
}

export interface CredentialOptions {
  /** Explicit credentials (e.g. from `--user`/`--password`): for every host, or per host. */
  explicit?: Credentials | Record<string, Credentials>;
  /** Environment to read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** docker config.json path (default `dockerConfigPath(env)`); `false` to ignore it. */
  dockerConfig?: string | false;
}

function isCredentials(v: unknown): v is Credentials {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Credentials).username === 'string' &&
    typeof (v as Credentials).password === 'string'
  );
}

/**
 * The default lookup order: explicit, then environment, then docker's config.json.
 * The config file is re-read on each lookup (a `dadi login` in another shell takes effect).
 */
export function defaultCredentials(opts: CredentialOptions = {}): CredentialProvider {
  const env = opts.env ?? process.env;
  return async (registry) => {
    const ex = opts.explicit;
    if (ex) {
      if (isCredentials(ex)) return ex;
      const hit = ex[registry] ?? ex[registry.toLowerCase()];
      if (hit) return hit;
    }
    const fromEnv = credentialsFromEnv(registry, env);
    if (fromEnv) return fromEnv;
    if (opts.dockerConfig === false) return undefined;
    const path = opts.dockerConfig ?? dockerConfigPath(env);
    return credentialsFromDockerConfig(registry, await readDockerConfig(path), path);
  };
}

/** A provider that always answers `creds` (or anonymous when undefined). */
export function staticCredentials(creds: Credentials | undefined): CredentialProvider {
  return async () => creds;
}
