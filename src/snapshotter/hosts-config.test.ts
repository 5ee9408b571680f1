import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainHttpInHostsConfig } from './hosts-config.js';

describe("containerd's hosts.toml", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-hosts-'));
    const put = async (host: string, text: string) => {
      await mkdir(join(dir, host), { recursive: true });
      await writeFile(join(dir, host, 'hosts.toml'), text);
    };
    await put('plain.lan:5000', 'server = "http://plain.lan:5000"\n');
    await put('mirror.lan_5000', '[host."http://mirror.lan:5000"]\n  capabilities = ["pull"]\n');
    await put('tls.lan', 'server = "https://tls.lan"\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['plain.lan:5000', true],
    ['mirror.lan:5000', true],
    ['tls.lan', false],
    ['absent.lan', false],
  ])('%s → plain HTTP %s', async (host, want) => {
    expect(await plainHttpInHostsConfig(dir, host)).toBe(want);
  });
});
