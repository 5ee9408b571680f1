// The daemon's HTTP warm-up: it completes on its own and leaves no server or connection open.

import { describe, expect, it } from 'vitest';
import { warmHttpClient } from './warm-http.js';

const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length;

describe('warmHttpClient', () => {
  it('makes its request and closes its server and connection', async () => {
    const before = tcpHandles();
    await warmHttpClient();
    // Closed sockets leave the list once their close callbacks have run.
    for (let i = 0; i < 50 && tcpHandles() > before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(tcpHandles()).toBe(before);
  });
});
