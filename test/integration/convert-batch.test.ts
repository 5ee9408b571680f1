// `dadi convert SRC=DST …` against Debian's docker-registry: two images sharing a base layer, in
// two repositories, converted in one run with --jobs 2. The shared layer converts once (the second
// image reuses it by chain ID), its blob is cross-repository mounted into the second repository
// (not uploaded again), and both converted images read back through `dadi cat`. A third, missing
// image fails naming itself while the others finish, and the exit code says so.

import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkJsonOutput } from '../../src/cli/json-output.js';
import type { BatchResult } from '../../src/convert/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { runDadi } from '../cli.js';
import { pushLayout, writeImageLayout } from './convert-helpers.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';

const HAVE = haveRegistry('convert several images');
let dir: string;
let reg: TestRegistry;
let client: RegistryClient;

describe.skipIf(!HAVE)('convert several images in one run', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-convert-batch-'));
    reg = await startRegistry();
    client = new RegistryClient({ backoffBaseMs: 10 });
  });
  afterAll(async () => {
    await client?.close();
    await reg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('shares the base layer by chain ID and by mount; a missing image fails alone', async () => {
    const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd: dir, stdio: 'pipe' });
    sh(`mkdir -p base/etc app/srv && echo base > base/etc/os && echo hello > app/srv/hello
      tar --numeric-owner -cf base.tar -C base . && tar --numeric-owner -cf app.tar -C app .`);
    const base = gzipSync(await readFile(join(dir, 'base.tar')));
    const app = gzipSync(await readFile(join(dir, 'app.tar')));
    await writeImageLayout(join(dir, 'one'), [base], 'v1');
    await writeImageLayout(join(dir, 'two'), [base, app], 'v1');
    await pushLayout(client, join(dir, 'one'), 'v1', `${reg.host}/one:v1`);
    await pushLayout(client, join(dir, 'two'), 'v1', `${reg.host}/two:v1`);

    const list = join(dir, 'list');
    await writeFile(
      list,
      `# the third is missing\n${reg.host}/two:v1 ${reg.host}/two:obd\n${reg.host}/nope:v1 ${reg.host}/nope:obd\n`,
    );
    const r = await runDadi([
      'convert',
      '--json',
      '--jobs',
      '2',
      '--workdir',
      join(dir, 'work'),
      `${reg.host}/one:v1=${reg.host}/one:obd`,
      '--from-file',
      list,
    ]);
    expect(r.code, r.stderr).toBe(1);
    const out = checkJsonOutput('convert', r.stdout) as BatchResult;
    expect(out.concurrency).toBe(2);
    expect(out.failed).toBe(1);
    const [one, two, nope] = out.images;
    if (!one?.ok || !two?.ok) throw new Error(`expected both images converted: ${r.stdout}`);
    expect(nope).toMatchObject({ ok: false, source: `${reg.host}/nope:v1` });
    expect(nope?.ok === false && nope.error).toContain(`${reg.host}/nope`);

    // The base layer converted once: the same blob in both, and the second run reused it.
    const shared = one.result.layers[0]!.digest;
    expect(two.result.layers[0]!.digest).toBe(shared);
    expect(one.result.layers[0]!.reused).not.toBe(two.result.layers[0]!.reused);
    // Uploaded to one repository, mounted into the other; the app layer uploaded once.
    const all = [one.blobs, two.blobs];
    expect(all.flatMap((b) => b.uploaded).filter((d) => d === shared)).toHaveLength(1);
    expect(all.flatMap((b) => b.mounted)).toEqual([shared]);
    expect(two.blobs.uploaded.concat(one.blobs.uploaded)).toContain(two.result.layers[1]!.digest);
    expect(await client.statBlob(parseReference(`${reg.host}/two:obd`), shared)).toBe(one.result.layers[0]!.size);

    const env = { DADI_STATE: join(dir, 'state'), DADI_CACHE_DIR: join(dir, 'cache') };
    const cat1 = await runDadi(['cat', '--no-cache', `${reg.host}/one:obd`, '/etc/os'], { env });
    expect(cat1.code, cat1.stderr).toBe(0);
    expect(cat1.stdout).toBe('base\n');
    for (const [path, want] of [
      ['/etc/os', 'base\n'],
      ['/srv/hello', 'hello\n'],
    ]) {
      const cat = await runDadi(['cat', '--no-cache', `${reg.host}/two:obd`, path!], { env });
      expect(cat.code, cat.stderr).toBe(0);
      expect(cat.stdout).toBe(want);
    }
  });

  it('a budget below two images converts one at a time', async () => {
    const r = await runDadi([
      'convert',
      '--json',
      '--jobs',
      '4',
      '--memory-budget',
      '600M',
      '--workdir',
      join(dir, 'work2'),
      `${reg.host}/one:v1=${reg.host}/one:obd2`,
      `${reg.host}/two:v1=${reg.host}/two:obd2`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = checkJsonOutput('convert', r.stdout) as BatchResult;
    expect(out.concurrency).toBe(1);
    expect(out.images.map((i) => i.ok)).toEqual([true, true]);
  });
});
