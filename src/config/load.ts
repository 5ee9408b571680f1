// Reading the config file (which one: file.ts): YAML with
// its line numbers, the environment's overrides, validation against schema.ts, and errors an
// operator can act on — each names the file (or variable), the key, its line and what is wrong.
// Not the keys themselves (schema.ts).
//
// @example
//   const config = await loadConfig({ file: opts.config });
//   config.cacheConfig.cacheSizeGB; // 4 unless the file or $DADI_CACHE_SIZE_GB says otherwise

import { readFile, stat } from 'node:fs/promises';
import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { DadiError } from '../errors.js';
import { parseSize } from '../util/size.js';
import { configFileOf, type LoadConfigOptions } from './file.js';
import { type ConfigField, configFields, configSchema, type DadiConfig, type FieldMeta } from './schema.js';

/** A config file is a few KiB; anything near this is not one. */
const MAX_CONFIG_BYTES = 1 << 20;

export interface LoadedConfig {
  config: DadiConfig;
  /** The file read, or undefined when none was named and the default path does not exist. */
  file?: string;
  /** The environment variables that overrode the file (names only: values may be secret). */
  overrides: string[];
}

/** The configuration for a long-running command; an invalid file or override is a DadiError. */
export async function loadConfig(o: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const { path, required } = configFileOf(o);
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' && !required) return undefined;
    throw new DadiError(e.code === 'ENOENT' ? 'ENOTFOUND' : 'EIO', `config ${path}: ${e.message}`);
  });
  if (!st) return parseConfig(undefined, undefined, o.env);
  if (!st.isFile()) throw new DadiError('EINVAL', `config ${path}: not a regular file`);
  if (st.size > MAX_CONFIG_BYTES) {
    throw new DadiError('ERANGE', `config ${path}: ${st.size} bytes, more than a config file can be (1 MiB)`);
  }
  return parseConfig(await readFile(path, 'utf8'), path, o.env);
}

/** Validate `text` (YAML; undefined: no file) with the environment's overrides on top. */
export function parseConfig(text: string | undefined, file = '<config>', env = process.env): LoadedConfig {
  const lines = new LineCounter();
  const doc = text === undefined ? undefined : parseDocument(text, { lineCounter: lines, prettyErrors: true });
  if (doc?.errors.length) {
    const e = doc.errors[0]!;
    const at = e.linePos?.[0];
    throw new DadiError(
      'EINVAL',
      `config ${file}${at ? ` line ${at.line}` : ''}: not valid YAML: ${firstLine(e.message).replace(/ at line \d+, column \d+:?$/, '')}`,
    );
  }
  const raw = doc ? (doc.toJS({ maxAliasCount: 100 }) as unknown) : {};
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new DadiError(
      'EINVAL',
      `config ${file}: expected a mapping of sections (e.g. cacheConfig:), got ${typeName(raw)}`,
    );
  }
  const merged = structuredClone((raw ?? {}) as Record<string, unknown>);
  // `logConfig:` with nothing under it is an empty section, not a null one.
  for (const [k, v] of Object.entries(merged)) if (v === null) delete merged[k];
  const fromEnv = applyEnv(merged, env);
  const r = configSchema.safeParse(merged);
  if (!r.success) {
    // The line of the key itself (a value may start on a later line, or be missing).
    const lineOf = (path: PropertyKey[]) => {
      if (!doc || path.length === 0) return undefined;
      const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1).map(String), true);
      const name = String(path.at(-1));
      const pair = isMap(parent)
        ? parent.items.find((p) => isScalar(p.key) && String(p.key.value) === name)
        : undefined;
      const range = isScalar(pair?.key) ? pair.key.range : undefined;
      return range ? lines.linePos(range[0]).line : undefined;
    };
    const problems = r.error.issues.slice(0, 10).map((i) => describeIssue(i, merged, fromEnv, file, lineOf));
    throw new DadiError('EINVAL', problems.join('\n'));
  }
  return {
    config: r.data,
    file: text === undefined ? undefined : file,
    overrides: [...fromEnv.values()].map((v) => v.name),
  };
}

interface EnvOverride {
  name: string;
  text: string;
}

/** Put each set override variable into `raw` at its key; returns key path → the variable. */
function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, EnvOverride> {
  const used = new Map<string, EnvOverride>();
  for (const f of configFields()) {
    const name = f.meta.env;
    const text = name ? env[name] : undefined;
    if (name === undefined || text === undefined || text === '') continue;
    const keys = f.path.split('.');
    let at = raw;
    for (const k of keys.slice(0, -1)) {
      if (typeof at[k] !== 'object' || at[k] === null || Array.isArray(at[k])) at[k] = {};
      at = at[k] as Record<string, unknown>;
    }
    at[keys.at(-1)!] = envValue(f, name, text);
    used.set(f.path, { name, text });
  }
  return used;
}

function envValue(f: ConfigField, name: string, text: string): unknown {
  const kind = f.meta.envKind ?? kindOf(f.default);
  const bad = (expected: string) => new DadiError('EINVAL', `${name}=${JSON.stringify(text)}: expected ${expected}`);
  switch (kind) {
    case 'boolean':
      if (/^(on|1|true|yes)$/i.test(text)) return true;
      if (/^(off|0|false|no)$/i.test(text)) return false;
      throw bad('on or off');
    case 'number': {
      const n = Number(text);
      if (!Number.isFinite(n) || text.trim() === '') throw bad('a number');
      return n;
    }
    case 'size':
      return parseSize(text, name);
    case 'list':
      return text.split(/[\s,]+/).filter((s) => s !== '');
    default:
      return text;
  }
}

function kindOf(value: unknown): FieldMeta['envKind'] {
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return 'number';
  return 'string';
}

/** One issue as a line naming where it came from (the file and line, or the variable) and the key. */
function describeIssue(
  issue: z.core.$ZodIssue,
  raw: Record<string, unknown>,
  fromEnv: Map<string, EnvOverride>,
  file: string,
  lineOf: (path: PropertyKey[]) => number | undefined,
): string {
  const key = issue.path.map(String).join('.');
  const override = fromEnv.get(key);
  if (override) return `${override.name}=${JSON.stringify(override.text)} (config key ${key}): ${issue.message}`;
  const where = (path: PropertyKey[]) => {
    const line = lineOf(path);
    return `config ${file}${line ? ` line ${line}` : ''}`;
  };
  if (issue.code === 'unrecognized_keys') {
    const known = Object.keys(shapeAt(issue.path));
    return issue.keys
      .map((k) => {
        const full = [...issue.path.map(String), k];
        const near = known.find((n) => n.toLowerCase() === k.toLowerCase()) ?? known.find((n) => closeTo(n, k));
        const hint = near ? `; did you mean ${[...issue.path.map(String), near].join('.')}?` : '';
        return `${where(full)}: unknown key ${full.join('.')}${hint} (known here: ${known.join(', ')})`;
      })
      .join('\n');
  }
  const got = valueAt(raw, issue.path);
  const expected = issue.code === 'invalid_type' ? `expected ${issue.expected}` : issue.message;
  return `${where(issue.path)}: ${key || '(top level)'}: ${expected}, got ${typeName(got)}${
    got !== undefined && typeof got !== 'object' ? ` ${JSON.stringify(got)}` : ''
  }`;
}

function shapeAt(path: PropertyKey[]): Record<string, unknown> {
  let fields = configFields().map((f) => f.path.split('.'));
  for (const [i, k] of path.entries()) fields = fields.filter((f) => f[i] === String(k));
  return Object.fromEntries(fields.map((f) => [f[path.length], true]));
}

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let v = raw;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** A typo's distance: one edit (insert, delete, replace, or swap of neighbours) apart. */
function closeTo(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 1) return false;
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const rest = (x: string, y: string) => x === y;
  return (
    rest(a.slice(i + 1), b.slice(i + 1)) ||
    rest(a.slice(i), b.slice(i + 1)) ||
    rest(a.slice(i + 1), b.slice(i)) ||
    (a[i] === b[i + 1] && a[i + 1] === b[i] && rest(a.slice(i + 2), b.slice(i + 2)))
  );
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (v === undefined) return 'nothing';
  return `a ${typeof v}`;
}

function firstLine(s: string): string {
  return s.split('\n')[0]!;
}
