// `dadi snapshotter` (containerd's proxy snapshotter, in the foreground) and
// `dadi pull --containerd-address` (an image into containerd, its DADI layers left remote).

import type { Command } from 'commander';

const DEFAULT_ROOT = '/var/lib/containerd/io.containerd.snapshotter.v1.dadi';

export function registerSnapshotterCommands(program: Command): void {
  program
    .command('snapshotter')
    .description("serve containerd's snapshots API (proxy plugin): DADI images lazily, others as overlayfs")
    .requiredOption('--address <sock>', 'unix socket to listen on')
    .option('--root <dir>', 'snapshots and metadata', DEFAULT_ROOT)
    .option('--state <dir>', 'dadi daemon state folder (default: $DADI_STATE or /run/dadi)')
    .action(async (o: { address: string; root: string; state?: string }) => {
      const { Snapshotter, daemonDevices, serveSnapshots } = await import('../snapshotter/index.js');
      const snap = await Snapshotter.open(o.root, daemonDevices(o.state));
      const svc = await serveSnapshots(snap, o.address);
      console.error(`dadi snapshotter: serving ${o.address} (root ${o.root})`);
      await new Promise<void>((res) => {
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => res());
      });
      await svc.stop();
    });
}
