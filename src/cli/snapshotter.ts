// `dadi snapshotter`: containerd's proxy snapshotter, in the foreground. Its companion
// `dadi pull --containerd-address` is pull.ts.

import type { Command } from 'commander';
import { DadiError } from '../errors.js';

export function registerSnapshotterCommand(program: Command): void {
  program
    .command('snapshotter')
    .description("serve containerd's snapshots API (proxy plugin): DADI images lazily, others as overlayfs")
    .option('--address <sock>', 'unix socket to listen on (default: snapshotter.address of the config file)')
    .option('--root <dir>', 'snapshots and metadata (default: snapshotter.root of the config file)')
    .option('--state <dir>', 'dadi daemon state folder (default: $DADI_STATE or /run/dadi)')
    .option(
      '--rw-mode <mode>',
      "containers' writes over DADI images: overlayfs (upper directory) or block (writable block layer)",
    )
    .option('--config <file>', 'config file (default: $DADI_CONFIG or /etc/dadi/config.yaml)')
    .action(async (flags: { address?: string; root?: string; state?: string; rwMode?: string; config?: string }) => {
      if (flags.rwMode !== undefined && flags.rwMode !== 'overlayfs' && flags.rwMode !== 'block') {
        throw new DadiError('EINVAL', `--rw-mode ${flags.rwMode}: use overlayfs or block`);
      }
      const { loadConfig } = await import('../config/index.js');
      const config = await loadConfigOf(flags.config);
      const o = {
        address: flags.address ?? config.snapshotter.address,
        root: flags.root ?? config.snapshotter.root,
        state: flags.state,
        rwMode: (flags.rwMode ?? config.snapshotter.rwMode) as 'overlayfs' | 'block',
      };
      const { PullService, Snapshotter, daemonDevices, serveSnapshots, warmContainerdCodecs, warmPullPath } =
        await import('../snapshotter/index.js');
      const { RootLogger } = await import('../log/logger.js');
      const logSettings = (c: typeof config) => ({ level: c.logConfig.logLevel, path: c.logConfig.logPath });
      const logger = RootLogger.create(logSettings(config), 'snapshotter');
      const devices = daemonDevices(o.state);
      // Set below: the pull service knows the containerd that asks for the mounts.
      let pulls: InstanceType<typeof PullService> | undefined;
      const snap = await Snapshotter.open(o.root, devices, {
        log: (m) => logger.info(m),
        rwMode: o.rwMode,
        containerLaunch: async (key) => pulls?.containerLaunch(key),
      });
      // Before serving: the codecs would otherwise be built inside the first pull and Prepare.
      warmContainerdCodecs();
      // And the code of a pull (registry client, HTTP parser, gRPC calls): one pull against stand-ins.
      const warming = performance.now();
      await warmPullPath().then(
        () => logger.debug(`warmed the pull path in ${Math.round(performance.now() - warming)} ms`),
        (e: Error) => logger.warn(`warming the pull path: ${e.message} (the first pull pays for it)`),
      );
      // `dadi pull` asks this process to pull: its registry credentials and hosts are this config's.
      pulls = new PullService({
        hostsDir: config.registry.hostsDir,
        devices,
        recordLayers: (layers, launch) => snap.recordRemoteLayers(layers, launch),
        launchAhead: (top, launch) => snap.launchAhead(top, launch),
        log: (m) => logger.warn(m),
      });
      const svc = await serveSnapshots(
        snap,
        o.address,
        { warn: (m) => logger.warn(m), debug: (m, f) => logger.debug(m, f) },
        pulls,
      );
      logger.info(`serving ${o.address} (root ${o.root})`);
      // SIGHUP: the log settings again (the other snapshotter keys need a restart).
      const reload = () =>
        void loadConfig({ file: flags.config }).then(
          (r) => {
            logger.reconfigure(logSettings(r.config));
            logger.info('reloaded the log settings');
          },
          (e: Error) => logger.error(`reload refused, the running config stays: ${e.message}`),
        );
      process.on('SIGHUP', reload);
      await new Promise<void>((res) => {
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => res());
      });
      process.off('SIGHUP', reload);
      await svc.stop();
      logger.info('stopped');
      logger.close();
    });
}

async function loadConfigOf(file: string | undefined) {
  const { loadConfig } = await import('../config/index.js');
  return (await loadConfig({ file })).config;
}
