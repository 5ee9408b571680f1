import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ContainerdClient } from './containerd-client.js';

describe('ContainerdClient.connect', () => {
  it("opens the connection to containerd's socket before any call", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dadi-ctrd-client-'));
    const sockets: Socket[] = [];
    const server = createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
    });
    const address = join(dir, 'containerd.sock');
    await new Promise<void>((r) => server.listen(address, r));
    const c = new ContainerdClient(address, 'default');
    try {
      await new Promise((r) => setTimeout(r, 50));
      expect(sockets).toHaveLength(0); // a client alone connects nowhere
      c.connect();
      for (let i = 0; i < 200 && sockets.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(sockets.length).toBeGreaterThan(0);
    } finally {
      c.close();
      for (const s of sockets) s.destroy();
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
