import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LAYER_PULL } from '../prefetch/layer-pull-plan.js';
import { layerPullConfigOf } from './components.js';
import { configFileOf } from './file.js';
import { loadConfig, parseConfig } from './load.js';
import { configReferenceTable, REFERENCE_BEGIN, REFERENCE_END, withReferenceTable } from './reference.js';
import { configFields } from './schema.js';

const FILE = '/etc/dadi/test.yaml';
const parse = (text: string | undefined, env: NodeJS.ProcessEnv = {}) => parseConfig(text, FILE, env).config;
const failure = (text: string | undefined, env: NodeJS.ProcessEnv = {}) => {
  try {
    parseConfig(text, FILE, env);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected the config to be refused');
};

describe('config file', () => {
  it('fills every default when there is no file, and the background pull keeps its defaults', () => {
    const c = parse(undefined);
    expect(c.cacheConfig).toEqual({ cacheSizeGB: 4 });
    expect(c.logConfig).toEqual({ logLevel: 'info', logPath: '' });
    expect(c.metrics.address).toBeUndefined();
    expect(c.daemon).toMatchObject({ stateDir: '/run/dadi', onStop: 'unmount' });
    expect(layerPullConfigOf(c)).toEqual(DEFAULT_LAYER_PULL);
    expect(parse('')).toEqual(c);
    expect(parse('logConfig:\n')).toEqual(c);
  });

  it("reads overlaybd's names, a size string, and overlaybd's numeric log level", () => {
    const c = parse(
      [
        'cacheConfig:',
        '  cacheDir: /var/cache/x',
        '  cacheSizeGB: 0.5',
        'logConfig:',
        '  logLevel: 0',
        'download:',
        '  enable: false',
        '  blockSize: 256K',
        '  tryCnt: 2',
        'metrics:',
        '  address: 127.0.0.1:9863',
        'p2pConfig:',
        '  roots: [http://10.0.0.1:19145/]',
      ].join('\n'),
    );
    expect(c.cacheConfig).toEqual({ cacheDir: '/var/cache/x', cacheSizeGB: 0.5 });
    expect(c.logConfig.logLevel).toBe('debug');
    expect(layerPullConfigOf(c)).toMatchObject({ enabled: false, chunkSize: 256 * 1024, tries: 2 });
    expect(c.metrics.address).toBe('127.0.0.1:9863');
    expect(c.p2pConfig.roots).toEqual(['http://10.0.0.1:19145/']);
  });

  it('refuses a typo, naming the file, the line and the key, and suggesting the right one', () => {
    const m = failure('cacheConfig:\n  cacheDir: /x\n  cacheSizeGb: 8\n');
    expect(m).toBe(
      `config ${FILE} line 3: unknown key cacheConfig.cacheSizeGb; did you mean cacheConfig.cacheSizeGB? ` +
        '(known here: cacheDir, cacheSizeGB)',
    );
    expect(failure('metric:\n  address: 127.0.0.1:1\n')).toMatch(
      new RegExp(`^config ${FILE} line 1: unknown key metric; did you mean metrics\\?`),
    );
  });

  it('refuses a wrong type, naming the file, the line, the key and the value', () => {
    expect(failure('logConfig:\n  logPath: /x\ncacheConfig:\n  cacheSizeGB: "8G"\n')).toBe(
      `config ${FILE} line 4: cacheConfig.cacheSizeGB: expected number, got a string "8G"`,
    );
    expect(failure('metrics:\n  address: 9863\n')).toMatch(
      /line 2: metrics\.address: expected string, got a number 9863/,
    );
    expect(failure('metrics:\n  address: localhost\n')).toMatch(/metrics\.address: expected host:port/);
    expect(failure('download:\n  blockSize: 3000\n')).toMatch(/download\.blockSize: expected a power of two/);
    expect(failure('daemon:\n  onStop: keep\n')).toMatch(/line 2: daemon\.onStop: .*"unmount"\|"wait"/);
    expect(failure('cacheConfig: 4\n')).toMatch(/line 1: cacheConfig: expected object, got a number 4/);
  });

  it('refuses what is not a YAML mapping', () => {
    expect(failure('- a\n')).toMatch(/expected a mapping of sections/);
    expect(failure('a: [\n')).toMatch(new RegExp(`^config ${FILE} line \\d: not valid YAML`));
    // An alias bomb stops at the parser's alias limit instead of expanding.
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 12; i++) bomb.push(`${'b'.repeat(i + 1)}: &b${i} [${Array(9).fill(i ? `*b${i - 1}` : '*a')}]`);
    expect(failure(`${bomb.join('\n')}\n`)).toMatch(/alias|Excessive/i);
  });

  it('lets each documented variable override the file, and names the variable when its value is bad', () => {
    const env = {
      DADI_PULL: 'off',
      DADI_PULL_DELAY: '0',
      DADI_PULL_DELAY_EXTRA: '1.5',
      DADI_PULL_MBPS: '2.5',
      DADI_PULL_CHUNK: '256K',
      DADI_PULL_CONCURRENCY: '3',
      DADI_PULL_TRIES: '2',
      DADI_CACHE_DIR: '/from/env',
      DADI_LOG_LEVEL: 'warn',
      DADI_STATE: '/run/x',
    };
    const c = parse('download:\n  enable: true\n  delay: 99\ncacheConfig:\n  cacheDir: /from/file\n', env);
    expect(layerPullConfigOf(c)).toEqual({
      enabled: false,
      delay: 0,
      delayExtra: 1.5,
      maxMBps: 2.5,
      chunkSize: 256 * 1024,
      concurrency: 3,
      tries: 2,
    });
    expect(c.cacheConfig.cacheDir).toBe('/from/env');
    expect(c.logConfig.logLevel).toBe('warn');
    expect(c.daemon.stateDir).toBe('/run/x');
    expect(parseConfig(undefined, FILE, env).overrides).toContain('DADI_PULL_MBPS');
    expect(parse(undefined, { DADI_PULL: 'on' }).download.enable).toBe(true);

    expect(failure(undefined, { DADI_PULL: 'maybe' })).toBe('DADI_PULL="maybe": expected on or off');
    expect(failure(undefined, { DADI_PULL_MBPS: '-1' })).toMatch(
      /^DADI_PULL_MBPS="-1" \(config key download\.maxMBps\)/,
    );
    expect(failure(undefined, { DADI_PULL_CONCURRENCY: '1.5' })).toMatch(/^DADI_PULL_CONCURRENCY="1.5"/);
    expect(failure(undefined, { DADI_PULL_CHUNK: '3000' })).toMatch(/^DADI_PULL_CHUNK="3000".*power of two/);
    expect(failure(undefined, { DADI_PULL_CHUNK: 'lots' })).toMatch(/DADI_PULL_CHUNK/);
    expect(failure(undefined, { DADI_LOG_LEVEL: 'chatty' })).toMatch(/^DADI_LOG_LEVEL="chatty"/);
  });
});

describe('config file on disk', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-config-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads --config, else $DADI_CONFIG; a named file must exist, the default path need not', async () => {
    const file = join(dir, 'c.yaml');
    await writeFile(file, 'cacheConfig:\n  cacheSizeGB: 2\n');
    expect((await loadConfig({ file, env: {} })).config.cacheConfig.cacheSizeGB).toBe(2);
    const viaEnv = await loadConfig({ env: { DADI_CONFIG: file } });
    expect(viaEnv.file).toBe(file);
    expect(configFileOf({ env: {} })).toEqual({ path: '/etc/dadi/config.yaml', required: false });
    await expect(loadConfig({ file: join(dir, 'missing.yaml'), env: {} })).rejects.toThrow(
      /^config .*missing\.yaml: ENOENT/,
    );
    await expect(loadConfig({ file: dir, env: {} })).rejects.toThrow(/not a regular file/);
  });

  it('refuses a file too big to be a config before reading it', async () => {
    const big = join(dir, 'big.yaml');
    await writeFile(big, Buffer.alloc((1 << 20) + 1, 0x20));
    await expect(loadConfig({ file: big, env: {} })).rejects.toThrow(/more than a config file can be/);
  });
});

describe('config reference in docs/operations.md', () => {
  it('documents every key with its default, as generated from the schema', async () => {
    const doc = await readFile(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const table = doc.slice(doc.indexOf(REFERENCE_BEGIN) + REFERENCE_BEGIN.length, doc.indexOf(REFERENCE_END)).trim();
    // Regenerate with `node --import tsx scripts/config-reference.ts`.
    expect(table).toBe(configReferenceTable());
    expect(withReferenceTable(doc)).toBe(doc);
    for (const f of configFields()) {
      expect(table).toContain(`| \`${f.path}\` |`);
      if (f.meta.env) expect(table).toContain(`\`${f.meta.env}\``);
    }
    expect(table).toContain('| `cacheConfig.cacheSizeGB` | `4` | `DADI_CACHE_SIZE_GB` |');
  });
});
