// `dadi login|logout|inspect|blob …`: talk to OCI registries (credentials, manifests, blobs).

import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { LocalFile } from '../blockfile/local.js';
import { FileSink } from '../blockfile/sink.js';
import { DadiError } from '../errors.js';
import { OverlaybdAnnotation } from '../oci/index.js';
import { login, logout, parseReference, RegistryClient } from '../registry/index.js';
import { withAtomicOutput } from '../util/atomic-output.js';
import { formatSize } from '../util/size.js';
import { openRemoteContext, type RemoteOptions, withRemoteOptions } from './context.js';
import { printFields, printJson } from './output.js';
import { terminalProgress } from './progress.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of createReadStream('/dev/stdin')) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString()
    .replace(/\r?\n$/, '');
}

export function registerRegistryCommands(program: Command): void {
  program
    .command('login')
    .description('check credentials against a registry and store them in docker config.json')
    .argument('<registry>', 'host[:port]')
    .requiredOption('-u, --username <user>')
    .option('-p, --password <password>', 'password (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .option('--insecure', 'plain HTTP')
    .action(async (registry: string, o) => {
      const password = o.passwordStdin ? await readStdin() : o.password;
      if (!password) throw new DadiError('EINVAL', `login ${registry}: give --password-stdin or --password`);
      const r = await login(registry, { username: o.username, password }, { insecure: o.insecure ? true : undefined });
      console.error(`Login succeeded: ${registry} (credentials stored in ${r.path})`);
    });

  program
    .command('logout')
    .description('remove stored credentials of a registry')
    .argument('<registry>')
    .action(async (registry: string) => {
      const removed = await logout(registry);
      console.error(removed ? `Removed credentials for ${registry}` : `No credentials stored for ${registry}`);
    });

  withRemoteOptions(
    program
      .command('inspect')
      .description('show an image: manifest, config and layers with their annotations and sizes')
      .argument('<ref>', 'host[:port]/repo[:tag|@digest]')
      .option('--json', 'machine-readable output'),
  ).action(async (ref: string, o: RemoteOptions & { json?: boolean }) => {
    const ctx = await openRemoteContext({ ...o, cache: false });
    try {
      const r = parseReference(ref);
      const resolved = await ctx.client.resolveImage(r, { platform: ctx.platform });
      const { config } = await ctx.client.getImageConfig(r, resolved.manifest.config);
      const layers = resolved.manifest.layers.map((l) => ({
        digest: l.digest,
        size: l.size,
        mediaType: l.mediaType,
        overlaybd: l.annotations?.[OverlaybdAnnotation.blobDigest] !== undefined,
        annotations: l.annotations ?? {},
      }));
      const info = {
        ref,
        digest: resolved.digest,
        mediaType: resolved.mediaType,
        indexes: resolved.indexes.map((i) => ({ digest: i.digest, mediaType: i.mediaType })),
        platform: config.os
          ? `${config.os}/${config.architecture}${config.variant ? `/${config.variant}` : ''}`
          : undefined,
        config: { digest: resolved.manifest.config.digest, size: resolved.manifest.config.size, config: config.config },
        layers,
        totalSize: layers.reduce((a, l) => a + l.size, 0),
      };
      if (o.json) return printJson(info);
      printFields([
        ['ref', ref],
        ['digest', info.digest],
        ['mediaType', info.mediaType],
        ['platform', info.platform ?? '-'],
        ['layers', `${layers.length} (${formatSize(info.totalSize)})`],
      ]);
      for (const [i, l] of layers.entries()) {
        console.log(`  [${i}] ${l.digest} ${formatSize(l.size)} ${l.mediaType}${l.overlaybd ? ' (overlaybd)' : ''}`);
        for (const [k, v] of Object.entries(l.annotations)) console.log(`      ${k}=${v}`);
      }
    } finally {
      await ctx.close();
    }
  });

  const blob = program.command('blob').description('move blobs to and from a registry');
  blob
    .command('push')
    .description('upload a file as a blob (skipped if present); prints its digest')
    .argument('<file>')
    .argument('<repo>', 'host[:port]/repo')
    .option('--insecure', 'plain HTTP')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, repo: string, o) => {
      const client = new RegistryClient({ insecure: o.insecure ? true : undefined });
      const f = await LocalFile.open(file);
      try {
        const r = await client.pushBlob(parseReference(repo), f);
        if (o.json) return printJson({ repo, digest: r.digest, size: r.size, how: r.how });
        console.log(r.digest);
        console.error(`${file}: ${r.how} ${formatSize(r.size)} as ${repo}@${r.digest}`);
      } finally {
        await f.close();
        await client.close();
      }
    });
  blob
    .command('pull')
    .description('download a blob (digest-verified) into a file')
    .argument('<ref>', 'host[:port]/repo@sha256:…')
    .argument('<out>')
    .option('--insecure', 'plain HTTP')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, out: string, o) => {
      const r = parseReference(ref);
      if (!r.digest) throw new DadiError('EINVAL', `${ref}: a blob reference needs @sha256:…`);
      const client = new RegistryClient({ insecure: o.insecure ? true : undefined });
      const bars = await terminalProgress();
      try {
        // The size for the bar: one HEAD, only when there is a bar to draw.
        const bar = bars?.bar(`${r.digest.slice(7, 19)}`, (await client.statBlob(r, r.digest)) ?? 0, { bytes: true });
        let got = 0;
        // Renamed into place only once the digest has been verified (blobStream checks it at the end).
        await withAtomicOutput(out, {}, async (file) => {
          const sink = FileSink.into(file);
          for await (const chunk of client.blobStream(r, r.digest!)) {
            await sink.write(chunk);
            got += chunk.length;
            bar?.update(got);
          }
          await sink.end();
        });
        if (o.json) printJson({ ref, digest: r.digest, size: got, out: resolve(out) });
      } finally {
        bars?.stop();
        await client.close();
      }
    });
}
