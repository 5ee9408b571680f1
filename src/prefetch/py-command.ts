// What a python command imports before anything it reads can say so: the modules of its `-c`
// code, its `-m` module, or the imports of the script it runs. A container whose command is python
// (`python3 -c 'import json'`) reads these right after the interpreter's start-up modules, one
// dependent round trip each, and no .pyc names them (py-imports.ts follows what .pyc files name).
// From the command line the daemon is given, so the import prefetch can start at the mount, before
// python runs. Only statements at the top level are taken (an indented import may never run);
// bounded by the launch request's argument bounds and MAX_SOURCE_BYTES for a script.

import type { PyImport } from './py-names.js';

/** What the command runs: the modules its code names, the script whose imports to read, python's version. */
export interface PyCommand {
  imports: PyImport[];
  /** An absolute script path (`python3 /app/main.py`): its source is read for imports. */
  script?: string;
  /** From the program's name (`python3.11` -> `3.11`); undefined for `python3`. */
  version?: string;
}

/** A script's source is scanned up to this many bytes. */
export const MAX_SOURCE_BYTES = 64 * 1024;
/** Names of the program: python, python3, python3.N. */
const PROGRAM = /^python(3(?:\.(\d+))?)?$/;
/** Options of python that take a value (the next argument when not joined): -W, -X; -c and -m end the options. */
const WITH_VALUE = new Set(['W', 'X']);
const LONG_WITH_VALUE = new Set(['--check-hash-based-pycs']);
const DOTTED = '[A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)*';
const IMPORT = new RegExp(`^import\\s+(${DOTTED}(?:\\s+as\\s+\\w+)?(?:\\s*,\\s*${DOTTED}(?:\\s+as\\s+\\w+)?)*)\\s*$`);
const FROM = new RegExp(`^from\\s+(\\.*)(${DOTTED})?\\s+import\\s+\\(?\\s*([\\w\\s,*]+?)\\s*\\)?\\s*$`);
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The python command run by `program` (an absolute path) with `args`; undefined when it is not python. */
export function pythonCommand(program: string | undefined, args: readonly string[]): PyCommand | undefined {
  const name = program?.slice(program.lastIndexOf('/') + 1) ?? '';
  const m = PROGRAM.exec(name);
  if (!m) return undefined;
  const cmd: PyCommand = { imports: [], version: m[2] ? `3.${m[2]}` : undefined };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-' || !a.startsWith('-')) {
      if (a.startsWith('/')) cmd.script = a;
      return cmd;
    }
    if (a.startsWith('--')) {
      if (LONG_WITH_VALUE.has(a)) i++;
      continue;
    }
    // Short options, which may be joined: -u, -Bc CODE, -cCODE, -Wignore.
    for (let j = 1; j < a.length; j++) {
      const opt = a[j]!;
      if (opt === 'c' || opt === 'm') {
        const value = j + 1 < a.length ? a.slice(j + 1) : args[i + 1];
        if (value === undefined) return cmd;
        // The code runs as __main__, outside any package: relative imports fail.
        if (opt === 'c') cmd.imports = sourceImports(value).filter((imp) => imp.level === 0);
        else if (new RegExp(`^${DOTTED}$`).test(value)) cmd.imports = [{ name: value, level: 0, from: [] }];
        return cmd;
      }
      if (WITH_VALUE.has(opt)) {
        if (j + 1 === a.length) i++;
        break;
      }
    }
  }
  return cmd;
}

/**
 * The imports of python source `text` made by its top-level statements (`import a.b, c as d`,
 * `from .x import (y, z)`, also after `;` on a top-level line); others (indented, in a string,
 * spread over lines) are not seen.
 */
export function sourceImports(text: string): PyImport[] {
  const out: PyImport[] = [];
  for (const line of text.slice(0, MAX_SOURCE_BYTES).split('\n')) {
    if (/^\s/.test(line)) continue;
    for (const part of line.split(';')) {
      const stmt = part.replace(/#.*$/, '').trim();
      const im = IMPORT.exec(stmt);
      if (im) {
        for (const n of im[1]!.split(',')) out.push({ name: n.trim().split(/\s+/)[0]!, level: 0, from: [] });
        continue;
      }
      const fm = FROM.exec(stmt);
      // `from . import x` names no module, `from import x` is no statement.
      if (fm && (fm[1] || fm[2])) {
        const from = fm[3]!
          .split(',')
          .map((n) => n.trim().split(/\s+/)[0]!)
          .filter((n) => IDENTIFIER.test(n));
        out.push({ name: fm[2] ?? '', level: fm[1]!.length, from });
      }
    }
  }
  return out;
}
