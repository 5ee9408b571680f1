// Names inside an image as text for people and scripts: ext4 names are bytes, which need not be
// UTF-8. The CLI prints them in the escaped form of util/quote.ts (`\xNN`, `\\`) and takes paths
// in that form back, so every name `dadi ls` shows can be given to `dadi cat` and `dadi stat`.
// Not the reader's own path handling (fs.ts `lookup` takes plain UTF-8).

import { DadiError } from '../errors.js';
import { escapeName, unescapeName } from '../util/quote.js';
import type { Ext4 } from './fs.js';

/** A directory entry name (a latin1 byte string, as fs.ts keeps them) in the escaped form. */
export function displayName(name: string): string {
  return escapeName(Buffer.from(name, 'latin1'));
}

/**
 * Resolve a path given in the escaped form to an inode, following symlinks in the middle (and at
 * the end with `follow`). Throws ENOTFOUND naming `label` and the path as given.
 * @example const ino = await resolveEscapedPath(fs, '/tmp/caf\\xe9', { follow: true, label: 'oci:img' });
 */
export async function resolveEscapedPath(
  fs: Ext4,
  path: string,
  opts: { follow: boolean; label: string },
): Promise<number> {
  const components = Buffer.from(unescapeName(path))
    .toString('latin1')
    .split('/')
    .filter((c) => c !== '' && c !== '.');
  const ino = await fs.resolve(components, opts.follow);
  if (ino === undefined) {
    throw new DadiError('ENOTFOUND', `${opts.label}: ${JSON.stringify(path)}: no such file or directory`);
  }
  return ino;
}
