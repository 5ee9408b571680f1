// openImageSource / openImageTarget: one spec string picks a layout or a registry endpoint, a
// shared registry client outlives the endpoints made from it, and targets refuse digests.

import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../test/fixtures.js';
import { sha256Of } from '../oci/digest.js';
import { parsePlatform } from '../oci/platform.js';
import { RegistryClient } from '../registry/client.js';
import { openImageSource, openImageTarget } from './source.js';

const AMD64_MANIFEST = 'sha256:7e9b6e7ba2842c91cf49f3e214d04a7a496f8214356f41d81a6e6dcad11f11e3';
const BLOB = Buffer.from('hello');
const BLOB_DIGEST = sha256Of(BLOB);

let dir: string;
let server: Server;
let host: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-source-'));
  // Just enough registry for a blob HEAD: 200 with a length for BLOB, 404 for anything else.
  server = createServer((req, res) => {
    const known = req.method === 'HEAD' && req.url === `/v2/app/blobs/${BLOB_DIGEST}`;
    res.writeHead(known ? 200 : 404, known ? { 'content-length': String(BLOB.length) } : {});
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  host = `127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

describe('image specs to endpoints', () => {
  it.runIf(haveFixtures('openImageSource on a layout'))(
    'opens oci: specs as layouts with local blob files',
    async () => {
      const src = await openImageSource(`oci:${fixture('oci/hello-world')}:multi-arch`);
      try {
        const r = await src.resolve({ platform: parsePlatform('linux/amd64') });
        expect(r.digest).toBe(AMD64_MANIFEST);
        const path = src.localBlobPath?.(r.manifest.layers[0]!);
        expect(path).toBeDefined();
        expect((await stat(path!)).size).toBe(r.manifest.layers[0]!.size);
      } finally {
        await src.close();
      }
    },
  );

  it('opens references on the registry through a shared client that outlives them', async () => {
    const client = new RegistryClient({ credentials: undefined, maxAttempts: 1 });
    try {
      const dst = await openImageTarget(`${host}/app:v1`, { client });
      expect(dst.name).toBe(`${host}/app:v1`);
      expect(await dst.statBlob(BLOB_DIGEST)).toBe(BLOB.length);
      expect(await dst.statBlob(sha256Of(Buffer.from('other')))).toBeUndefined();
      await dst.close();
      const src = await openImageSource(`${host}/app@${AMD64_MANIFEST}`, { client });
      expect(src.name).toBe(`${host}/app@${AMD64_MANIFEST}`);
      await src.close();
      // Still usable: the endpoints did not close the client they were given.
      expect(await client.statBlob({ registry: host, repository: 'app' }, BLOB_DIGEST)).toBe(BLOB.length);
    } finally {
      await client.close();
    }
  });

  it('refuses a digest as a target, for layouts and registries alike', async () => {
    await expect(openImageTarget(`oci:${join(dir, 'out')}@${AMD64_MANIFEST}`)).rejects.toThrow(/cannot name a digest/);
    await expect(openImageTarget(`${host}/app@${AMD64_MANIFEST}`)).rejects.toThrow(/names a tag, not a digest/);
  });
});
