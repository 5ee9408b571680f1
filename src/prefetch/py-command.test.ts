import { describe, expect, it } from 'vitest';
import { MAX_SOURCE_BYTES, pythonCommand, sourceImports } from './py-command.js';

const abs = (name: string, from: string[] = []) => ({ name, level: 0, from });

describe('pythonCommand', () => {
  it("takes the bench's command: the -c code's imports, after options joined or not", () => {
    const code = 'import json, http.server; print("imported")';
    expect(pythonCommand('/usr/bin/python3', ['-c', code])).toEqual({
      imports: [abs('json'), abs('http.server')],
      version: undefined,
    });
    expect(pythonCommand('/usr/local/bin/python3.11', ['-u', '-X', 'dev', '-Bc', code])?.imports).toEqual([
      abs('json'),
      abs('http.server'),
    ]);
    expect(pythonCommand('/usr/bin/python3.12', [`-c${code}`])).toMatchObject({ version: '3.12' });
    expect(pythonCommand('/usr/bin/python', ['-Wignore', '-c', 'from . import x; import os']))?.toEqual({
      imports: [abs('os')],
      version: undefined,
    });
  });

  it('takes -m, a script path, and nothing from programs that are not python', () => {
    expect(pythonCommand('/usr/bin/python3', ['-m', 'http.server', '8000'])?.imports).toEqual([abs('http.server')]);
    expect(pythonCommand('/usr/bin/python3', ['-m', 'not a module'])?.imports).toEqual([]);
    expect(pythonCommand('/usr/bin/python3', ['--check-hash-based-pycs', 'never', '/app/main.py', '-c', 'x'])).toEqual({
      imports: [],
      script: '/app/main.py',
      version: undefined,
    });
    expect(pythonCommand('/usr/bin/python3', ['main.py'])).toEqual({ imports: [], version: undefined });
    expect(pythonCommand('/usr/bin/python3', ['-c'])).toEqual({ imports: [], version: undefined });
    expect(pythonCommand('/usr/bin/python3', [])).toEqual({ imports: [], version: undefined });
    for (const p of ['/bin/cat', '/usr/bin/python3-config', '/usr/bin/pythonista', undefined])
      expect(pythonCommand(p, ['-c', 'import json'])).toBeUndefined();
  });
});

describe('sourceImports', () => {
  it('takes the top-level import statements, with their from-lists and levels', () => {
    const src = [
      'import os, sys as system',
      'import a.b.c as abc  # comment',
      'from collections import OrderedDict, defaultdict as dd',
      'from .. import sibling',
      'from .pkg.mod import (one, two)',
      'from star import *',
      'x = 1; import after_semicolon',
      'def f():',
      '    import inside_function',
      'if True:',
      '\timport inside_branch',
      'print("import not_this")',
      'from broken import (',
      '    spread,',
      ')',
    ].join('\n');
    expect(sourceImports(src)).toEqual([
      abs('os'),
      abs('sys'),
      abs('a.b.c'),
      abs('collections', ['OrderedDict', 'defaultdict']),
      { name: '', level: 2, from: ['sibling'] },
      { name: 'pkg.mod', level: 1, from: ['one', 'two'] },
      abs('star'),
      abs('after_semicolon'),
    ]);
  });

  it('stays within its bound and never throws on arbitrary text (seeded)', () => {
    let seed = 0x5eed;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    const pieces = ['import ', 'from ', ' import ', '.', ',', '(', ')', ';', '\n', ' ', 'a', 'b_1', '*', '#', ' as '];
    for (let round = 0; round < 300; round++) {
      let text = '';
      const n = Math.floor(rand() * 200);
      for (let i = 0; i < n; i++) text += pieces[Math.floor(rand() * pieces.length)];
      for (const imp of sourceImports(text)) {
        expect(imp.level).toBeGreaterThanOrEqual(0);
        expect(imp.name === '' ? imp.level > 0 : /^[A-Za-z_][\w.]*$/.test(imp.name)).toBe(true);
      }
    }
    // Past the bound nothing is read: an import there is not seen.
    expect(sourceImports(`${'#'.repeat(MAX_SOURCE_BYTES)}\nimport late`)).toEqual([]);
  });
});
