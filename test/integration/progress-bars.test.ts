// Progress bars (issue #15): drawn on stderr when it is a terminal (here a pseudo-terminal from
// util-linux `script`), never when output is piped: then `dadi convert` keeps its plain lines and
// no escape sequence reaches the pipe.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, runDadi } from '../cli.js';
import { fixture, haveFixtures } from '../fixtures.js';
import { missing, requireOrSkip } from '../require.js';

const HAVE =
  haveFixtures('progress bars') &&
  requireOrSkip('progress bars', missing({ tools: ['script'], hint: 'apt-get install bsdutils' }));
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe.skipIf(!HAVE)('progress bars', () => {
  let dir: string;
  const hello = () => `oci:${fixture('oci/hello-world')}:amd64`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-progress-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('convert on a terminal draws one bar per layer up to 100%', async () => {
    const cmd = [process.execPath, '--import', 'tsx', join(repoRoot, 'src/cli/entry.ts'), 'convert']
      .concat(['--workdir', join(dir, 'w1'), hello(), `oci:${join(dir, 'tty')}:dadi`])
      .map((a) => `'${a.replaceAll("'", "'\\''")}'`)
      .join(' ');
    const r = await run('script', ['-qec', cmd, '/dev/null'], { cwd: repoRoot });
    expect(r.code, r.stdout).toBe(0);
    const bar = /layer 1\/1 [0-9a-f]{12} \|[█░]{30}\| 100% 4\/4 upload/;
    expect(r.stdout).toMatch(bar);
    expect(r.stdout).toContain('\x1b['); // drawn with cursor control
    expect(r.stdout).toMatch(/pushed manifest sha256:[0-9a-f]{64}/);
    expect(r.stdout).toMatch(/1 layer\(s\), linux\/amd64/);
  });

  it('piped: no bars, no escape sequences, the plain progress lines', async () => {
    const r = await runDadi(['convert', '--workdir', join(dir, 'w2'), hello(), `oci:${join(dir, 'pipe')}:dadi`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr + r.stdout).not.toContain('\x1b[');
    expect(r.stderr).not.toMatch(/[█░]/);
    expect(r.stderr).toMatch(/layer 1\/1 [0-9a-f]{12} upload/);
  });
});
