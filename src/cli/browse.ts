// `dadi ls|cat|stat IMAGE PATH`: browse an image's filesystem without mounting it — our own ext4
// reader over the (lazily fetched) virtual disk. IMAGE is a registry ref or `oci:DIR[:TAG]`.

import type { Command } from 'commander';
import { DadiError } from '../errors.js';
import { Ext4 } from '../ext4/index.js';
import { displayName, resolveEscapedPath } from '../ext4/names.js';
import { type OpenedImage, openImage } from '../image/open-image.js';
import { escapeName } from '../util/quote.js';
import { openRemoteContext, type RemoteOptions, withRemoteOptions } from './context.js';
import { printFetchStats } from './image.js';
import { printJson } from './output.js';

type BrowseOptions = RemoteOptions & { json?: boolean; stats?: boolean };

async function withImageFs<T>(image: string, o: BrowseOptions, fn: (fs: Ext4, img: OpenedImage) => Promise<T>) {
  const ctx = await openRemoteContext(o, image);
  try {
    const img = await openImage(image, ctx);
    try {
      const fs = await Ext4.open(img.device);
      const r = await fn(fs, img);
      if (o.stats) printFetchStats(img.stats());
      return r;
    } finally {
      await img.close();
    }
  } finally {
    await ctx.close();
  }
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
  const browse = (name: string, description: string) =>
    withRemoteOptions(
      program
        .command(name)
        .description(description)
        .argument('<image>', 'host[:port]/repo[:tag|@digest] or oci:DIR[:TAG]')
        .argument('<path>', 'absolute path inside the image')
        .option('--stats', 'print bytes and requests fetched'),
    );

  browse('ls', 'list a directory of an image (names with unusual bytes escaped: \\xNN, \\\\)')
    .option('--json')
    .action(async (image: string, path: string, o: BrowseOptions) => {
      await withImageFs(image, o, async (fs) => {
        const ino = await resolveEscapedPath(fs, path, { follow: true, label: image });
        if ((await fs.stat(ino)).kind !== 'dir') {
          throw new DadiError('EINVAL', `${image}: ${JSON.stringify(path)}: not a directory (dadi stat shows a file)`);
        }
        const rows = [];
        for (const e of await fs.entries(ino)) {
          const st = await fs.stat(e.ino);
          const target = st.kind === 'symlink' ? escapeName(await fs.readlinkIno(e.ino)) : undefined;
          rows.push({
            name: displayName(e.name),
            kind: st.kind,
            mode: st.mode & 0o7777,
            uid: st.uid,
            gid: st.gid,
            size: st.size,
            mtime: st.mtime.sec,
            target,
          });
        }
        if (o.json) return printJson(rows);
        for (const r of rows) {
          const when = new Date(r.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
          console.log(
            `${typeChar[r.kind] ?? '?'}${modeString(r.mode)} ${String(r.uid).padStart(5)} ${String(r.gid).padStart(5)} ${String(r.size).padStart(10)} ${when} ${r.name}${r.target ? ` -> ${r.target}` : ''}`,
          );
        }
      });
    });

  browse('cat', 'print a file of an image').action(async (image: string, path: string, o: BrowseOptions) => {
    await withImageFs(image, o, async (fs) => {
      const ino = await resolveEscapedPath(fs, path, { follow: true, label: image });
      if ((await fs.stat(ino)).kind !== 'file') {
        throw new DadiError('EINVAL', `${image}: ${JSON.stringify(path)}: not a regular file`);
      }
      for await (const chunk of fs.readFile(ino)) {
        if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
      }
    });
  });

  browse('stat', "show a path's inode: type, mode, owner, size, times, xattrs")
    .option('--json')
    .action(async (image: string, path: string, o: BrowseOptions) => {
      await withImageFs(image, o, async (fs) => {
        const ino = await resolveEscapedPath(fs, path, { follow: false, label: image });
        const st = await fs.stat(ino);
        const info = {
          path,
          ino: st.ino,
          kind: st.kind,
          mode: `0${(st.mode & 0o7777).toString(8)}`,
          uid: st.uid,
          gid: st.gid,
          size: st.size,
          nlink: st.nlink,
          rdev: st.kind === 'chr' || st.kind === 'blk' ? `${st.rdev.major}:${st.rdev.minor}` : undefined,
          target: st.kind === 'symlink' ? escapeName(await fs.readlinkIno(ino)) : undefined,
          mtime: `${new Date(st.mtime.sec * 1000).toISOString()} (+${st.mtime.nsec} ns)`,
          ctime: `${new Date(st.ctime.sec * 1000).toISOString()} (+${st.ctime.nsec} ns)`,
          xattrs: Object.fromEntries([...st.xattrs].map(([k, v]) => [k, Buffer.from(v).toString('hex')])),
        };
        if (o.json) return printJson(info);
        for (const [k, v] of Object.entries(info))
          if (v !== undefined) console.log(`${k.padEnd(6)} ${typeof v === 'object' ? JSON.stringify(v) : v}`);
      });
    });
}
