// `dadi serve-nbd REF --socket PATH [--rw]`: serve an image's virtual disk over NBD (the VM path:
// QEMU, qemu-img, nbdcopy), reading blocks lazily from the registry through the cache.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { DadiError } from '../errors.js';
import { NbdServer } from '../export/index.js';
import { openImage } from '../image/open-image.js';
import { formatSize } from '../util/size.js';
import { openRemoteContext, type RemoteOptions, withRemoteOptions } from './context.js';
import { printFetchStats } from './output.js';

interface ServeOptions extends RemoteOptions {
  socket?: string;
  port?: string;
  host: string;
  name: string;
  rw?: boolean;
  upper?: string;
}

export function registerNbdCommands(program: Command): void {
  withRemoteOptions(
    program
      .command('serve-nbd')
      .description("serve an image's virtual disk over NBD until interrupted")
      .argument('<ref>', 'host[:port]/repo[:tag|@digest]')
      .option('--socket <path>', 'listen on a unix socket')
      .option('--port <port>', 'listen on TCP (loopback by default)')
      .option('--host <addr>', 'TCP address to listen on', '127.0.0.1')
      .option('--name <export>', 'export name', 'dadi')
      .option('--rw', 'writable: writes go to a writable layer on top (discarded on exit unless --upper)')
      .option('--upper <dir>', 'keep the writable layer (writable_data, writable_index) in this folder'),
  ).action(async (ref: string, o: ServeOptions) => {
    if (!o.socket === !o.port) throw new DadiError('EINVAL', 'serve-nbd: give exactly one of --socket or --port');
    const ctx = await openRemoteContext(o, ref);
    let scratch: string | undefined;
    const dir = o.rw ? (o.upper ?? (scratch = await mkdtemp(join(tmpdir(), 'dadi-nbd-')))) : undefined;
    const img = await openImage(ref, ctx, {
      writable: dir ? { data: join(dir, 'writable_data'), index: join(dir, 'writable_index') } : undefined,
    });
    const device = img.device;
    const server = new NbdServer([{ name: o.name, file: device, readOnly: !o.rw, description: ref }]);
    const where = await server.listen(o.socket ? { socket: o.socket } : { port: Number(o.port), host: o.host });
    console.error(
      `serving ${ref} (${formatSize(device.size)}, ${o.rw ? 'rw' : 'ro'}) as NBD export "${o.name}" on ${'socket' in where ? where.socket : `${where.host}:${where.port}`}`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    printFetchStats(img.stats());
    await device.close();
    await ctx.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });
}
