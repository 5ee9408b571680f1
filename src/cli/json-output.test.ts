// The --json schemas cover exactly the commands that take --json, and docs/json-output.md is what
// they generate. (Real outputs are checked against them by the integration tests.)

import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { JSON_OUTPUTS, jsonOutputDoc } from './json-output.js';
import { buildProgram } from './main.js';

function commandsWithJson(cmd: Command, prefix: string[] = []): string[] {
  const out: string[] = [];
  for (const c of cmd.commands) {
    const path = [...prefix, c.name()];
    if (c.options.some((o) => o.long === '--json')) out.push(path.join(' '));
    out.push(...commandsWithJson(c, path));
  }
  return out;
}

describe('--json schemas', () => {
  it('one schema per command that takes --json, and none for others', async () => {
    const withJson = commandsWithJson(await buildProgram());
    expect(withJson.length).toBeGreaterThan(20);
    expect(Object.keys(JSON_OUTPUTS).sort()).toEqual(withJson.sort());
  });

  it('docs/json-output.md is generated from them (node --import tsx scripts/json-output-doc.ts)', async () => {
    const doc = await readFile(new URL('../../docs/json-output.md', import.meta.url), 'utf8');
    expect(doc).toBe(jsonOutputDoc());
  });
});
