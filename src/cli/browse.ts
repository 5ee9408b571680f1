// `dadi ls|cat|stat IMAGE PATH`: browse an image's filesystem without mounting it — our own ext4
// reader over the (lazily fetched) virtual disk (image/browse.ts). IMAGE is a registry ref or
// `oci:DIR[:TAG]`. When the daemon owns the block cache it does the read (through that cache) and
// this process only prints; otherwise the read runs here, claiming the cache if it is free.

import type { Command } from 'commander';
import type { BrowseOp, BrowseResult, DirRow, PathInfo } from '../image/browse.js';
import { daemonForReads, openRemoteContext, type RemoteOptions, withRemoteOptions } from './context.js';
import { printFetchStats, printJson } from './output.js';

type BrowseOptions = RemoteOptions & { json?: boolean; stats?: boolean };

/** Run `op` through the daemon or here; `cat`'s bytes go to stdout as they come. */
async function browse(op: BrowseOp, image: string, path: string, o: BrowseOptions): Promise<BrowseResult['value']> {
  const toStdout = async (chunk: Uint8Array) => {
    if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
  };
  let r: BrowseResult;
  const daemon = await daemonForReads(o, [image]);
  if (daemon) {
    r = await daemon.browse<BrowseResult>({ what: op, image, path, platform: o.platform }, toStdout);
  } else {
    const { browseImage } = await import('../image/browse.js');
    const ctx = await openRemoteContext(o, image);
    try {
      r = await browseImage(image, ctx, op, path, toStdout);
    } finally {
      await ctx.close();
    }
  }
  if (o.stats) printFetchStats(r.fetched);
  return r.value;
}

const typeChar: Record<string, string> = {
  dir: 'd',
  symlink: 'l',
  chr: 'c',
  blk: 'b',
  fifo: 'p',
  sock: 's',
  file: '-',
};

function modeString(mode: number): string {
  const rwx = (bits: number, special: boolean, ch: string) =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return (
    rwx((mode >> 6) & 7, !!(mode & 0o4000), 's') +
    rwx((mode >> 3) & 7, !!(mode & 0o2000), 's') +
    rwx(mode & 7, !!(mode & 0o1000), 't')
  );
}

export function registerBrowseCommands(program: Command): void {
  const command = (name: string, description: string) =>
    withRemoteOptions(
      program
        .command(name)
        .description(description)
        .argument('<image>', 'host[:port]/repo[:tag|@digest] or oci:DIR[:TAG]')
        .argument('<path>', 'absolute path inside the image')
        .option('--stats', 'print bytes and requests fetched'),
    );

  command('ls', 'list a directory of an image (names with unusual bytes escaped: \\xNN, \\\\)')
    .option('--json')
    .action(async (image: string, path: string, o: BrowseOptions) => {
      const rows = (await browse('ls', image, path, o)) as DirRow[];
      if (o.json) return printJson(rows);
      for (const r of rows) {
        const when = new Date(r.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
        console.log(
          `${typeChar[r.kind] ?? '?'}${modeString(r.mode)} ${String(r.uid).padStart(5)} ${String(r.gid).padStart(5)} ${String(r.size).padStart(10)} ${when} ${r.name}${r.target ? ` -> ${r.target}` : ''}`,
        );
      }
    });

  command('cat', 'print a file of an image').action(async (image: string, path: string, o: BrowseOptions) => {
    await browse('cat', image, path, o);
  });

  command('stat', "show a path's inode: type, mode, owner, size, times, xattrs")
    .option('--json')
    .action(async (image: string, path: string, o: BrowseOptions) => {
      const info = (await browse('stat', image, path, o)) as PathInfo;
      if (o.json) return printJson(info);
      for (const [k, v] of Object.entries(info))
        if (v !== undefined) console.log(`${k.padEnd(6)} ${typeof v === 'object' ? JSON.stringify(v) : v}`);
    });
}
