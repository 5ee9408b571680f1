import { spawn } from 'node:child_process';
import {
  chmod,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalFile } from '../blockfile/local.js';
import { DadiError } from '../errors.js';
import {
  type AtomicOutput,
  assertDistinctFiles,
  isTempName,
  withAtomicFiles,
  withAtomicOutput,
  writeFileAtomicSync,
} from './atomic-output.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const leftovers = async () => (await readdir(dir)).filter(isTempName);
const write = (text: string) => async (out: AtomicOutput) => {
  await out.handle.writeFile(text);
};

describe('withAtomicOutput', () => {
  it('creates the file only on success, replacing an existing one and keeping its mode', async () => {
    const dest = join(dir, 'out');
    await writeFile(dest, 'old');
    await chmod(dest, 0o640);
    await withAtomicOutput(dest, {}, async (out) => {
      await out.handle.writeFile('new');
      expect(await readFile(dest, 'utf8')).toBe('old'); // not visible before the commit
    });
    expect(await readFile(dest, 'utf8')).toBe('new');
    expect((await stat(dest)).mode & 0o777).toBe(0o640);
    expect(await leftovers()).toEqual([]);
  });

  it('leaves the destination as it was and removes the temporary file on failure', async () => {
    const dest = join(dir, 'out');
    await writeFile(dest, 'old');
    const boom = new DadiError('EIO', 'boom');
    await expect(
      withAtomicOutput(dest, {}, async (out) => {
        await out.handle.writeFile('partial');
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await readFile(dest, 'utf8')).toBe('old');
    expect(await leftovers()).toEqual([]);
    await expect(withAtomicOutput(join(dir, 'fresh'), {}, () => Promise.reject(boom))).rejects.toBe(boom);
    expect(await readdir(dir)).toEqual(['out']);
  });

  it('writes through a symlink destination, keeping the link', async () => {
    const target = join(dir, 'target');
    const linkPath = join(dir, 'link');
    await writeFile(target, 'old');
    await symlink(target, linkPath);
    await withAtomicOutput(linkPath, {}, write('new'));
    expect((await lstat(linkPath)).isSymbolicLink()).toBe(true);
    expect(await readlink(linkPath)).toBe(target);
    expect(await readFile(target, 'utf8')).toBe('new');
  });

  it('refuses an input as output: same path, hard link, symlink, and files open for reading', async () => {
    const input = join(dir, 'in');
    await writeFile(input, 'data');
    await link(input, join(dir, 'hard'));
    await symlink(input, join(dir, 'soft'));
    for (const dest of [input, join(dir, 'hard'), join(dir, 'soft')]) {
      const err = await withAtomicOutput(dest, { inputs: [input] }, write('x')).catch((e) => e);
      expect(err).toBeInstanceOf(DadiError);
      expect(err.message).toMatch(/refusing to write the output onto an input/);
      expect(err.message).toContain(dest);
    }
    const open = await LocalFile.open(input);
    try {
      await expect(withAtomicOutput(join(dir, 'hard'), {}, write('x'))).rejects.toThrow(/same file as the input/);
    } finally {
      await open.close();
    }
    await withAtomicOutput(join(dir, 'hard'), {}, write('x')); // closed: no longer an input
    expect(await readFile(input, 'utf8')).toBe('data');
    expect(await leftovers()).toEqual([]);
  });

  it('refuses a destination that is not a regular file, and with noClobber an existing one', async () => {
    await expect(withAtomicOutput(dir, {}, write('x'))).rejects.toThrow(/not a regular file/);
    const dest = join(dir, 'out');
    await writeFile(dest, 'old');
    await expect(withAtomicOutput(dest, { noClobber: true }, write('x'))).rejects.toThrow(/already exists/);
  });
});

describe('writeFileAtomicSync', () => {
  it('creates or replaces the file, keeping an existing mode, through a symlink', async () => {
    const dest = join(dir, 'state.json');
    writeFileAtomicSync(dest, 'one\n');
    expect(await readFile(dest, 'utf8')).toBe('one\n');
    await chmod(dest, 0o640);
    writeFileAtomicSync(dest, 'two\n');
    expect(await readFile(dest, 'utf8')).toBe('two\n');
    expect((await stat(dest)).mode & 0o777).toBe(0o640);
    const link = join(dir, 'link.json');
    await symlink(dest, link);
    writeFileAtomicSync(link, 'three\n');
    expect(await readlink(link)).toBe(dest);
    expect(await readFile(dest, 'utf8')).toBe('three\n');
    expect(await leftovers()).toEqual([]);
  });

  it('leaves nothing behind and names the file when it cannot write', async () => {
    const folder = join(dir, 'a-folder');
    await mkdir(folder);
    expect(() => writeFileAtomicSync(folder, 'x')).toThrow(/a-folder: exists and is not a regular file/);
    const missing = join(dir, 'no-such-dir', 'state.json');
    expect(() => writeFileAtomicSync(missing, 'x')).toThrow(DadiError);
    expect(() => writeFileAtomicSync(missing, 'x')).toThrow(/no-such-dir\/state.json.*cannot write/);
    expect(await leftovers()).toEqual([]);
  });
});

describe('a process killed mid-write', () => {
  it('removes its temporary file on SIGTERM and dies of the signal', async () => {
    const dest = join(dir, 'out');
    const script = `
      const { withAtomicOutput } = await import(${JSON.stringify(new URL('./atomic-output.ts', import.meta.url).href)});
      await withAtomicOutput(${JSON.stringify(dest)}, {}, async (out) => {
        await out.handle.writeFile('partial');
        console.log('writing');
        await new Promise((r) => setTimeout(r, 60_000));
      });`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
      });
      expect((await readdir(dir)).filter(isTempName)).toHaveLength(1);
      const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
      child.kill('SIGTERM');
      expect(await exited).toBe('SIGTERM');
      expect(await readdir(dir)).toEqual([]);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});

describe('withAtomicFiles', () => {
  it('publishes all files together, or none', async () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    await expect(
      withAtomicFiles([a, b], {}, async ([ta]) => {
        await writeFile(ta!, 'A');
        throw new DadiError('EIO', 'second file failed');
      }),
    ).rejects.toThrow(/second file failed/);
    expect(await readdir(dir)).toEqual([]);
    await withAtomicFiles([a, b], {}, async ([ta, tb]) => {
      await writeFile(ta!, 'A');
      await writeFile(tb!, 'B');
    });
    expect([await readFile(a, 'utf8'), await readFile(b, 'utf8')]).toEqual(['A', 'B']);
    await expect(withAtomicFiles([a, b], {}, async () => {})).rejects.toThrow(/already exists \(--force/);
    await expect(withAtomicFiles([a, a], { replace: true }, async () => {})).rejects.toThrow(/same file as the output/);
  });

  it('assertDistinctFiles: missing outputs given twice', async () => {
    await expect(assertDistinctFiles([join(dir, 'x'), join(dir, 'x')], [])).rejects.toThrow(/given twice/);
  });
});
