// Test helper: Python modules compiled to .pyc by the python3 on PATH, in a temp directory.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** python3's cache tag (e.g. cpython-311), or undefined without a python3 that has one. */
export function pythonTag(): string | undefined {
  try {
    const tag = execFileSync('python3', ['-c', 'import sys; print(sys.implementation.cache_tag)'], {
      encoding: 'utf8',
    }).trim();
    return /^cpython-3(1[1-3])$/.test(tag) ? tag : undefined;
  } catch {
    return undefined;
  }
}

/** Write `sources` (path -> text) under a temp dir, compile them; returns the .pyc files (path -> bytes). */
export async function compileModules(sources: Record<string, string>): Promise<Map<string, Buffer>> {
  const dir = await mkdtemp(join(tmpdir(), 'dadi-pyc-'));
  for (const [path, text] of Object.entries(sources)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  execFileSync('python3', ['-m', 'compileall', '-q', dir]);
  const out = new Map<string, Buffer>();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.pyc')) out.set(p, await readFile(join(dir, p)));
    }
  };
  await walk('');
  return out;
}
