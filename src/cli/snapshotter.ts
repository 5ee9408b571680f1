// `dadi snapshotter` (containerd's proxy snapshotter, in the foreground) and
// `dadi pull --containerd-address` (an image into containerd, its DADI layers left remote).

import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { DadiError } from '../errors.js';
import { printJson } from './output.js';

export function registerSnapshotterCommands(program: Command): void {
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
      const { Snapshotter, daemonDevices, serveSnapshots } = await import('../snapshotter/index.js');
      const { RootLogger } = await import('../log/logger.js');
      const logSettings = (c: typeof config) => ({ level: c.logConfig.logLevel, path: c.logConfig.logPath });
      const logger = RootLogger.create(logSettings(config), 'snapshotter');
      const snap = await Snapshotter.open(o.root, daemonDevices(o.state), {
        log: (m) => logger.info(m),
        rwMode: o.rwMode,
      });
      const svc = await serveSnapshots(snap, o.address, {
        warn: (m) => logger.warn(m),
        debug: (m, f) => logger.debug(m, f),
      });
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

  program
    .command('pull')
    .description('pull a DADI image into containerd, layers left in the registry (for the dadi snapshotter)')
    .argument('<ref>', 'host[:port]/repo[:tag|@digest]')
    .requiredOption('--containerd-address <sock>', "containerd's socket")
    .option('-n, --namespace <ns>', 'containerd namespace', 'default')
    .option('--snapshotter <name>', "the dadi snapshotter's name in containerd's config", 'dadi')
    .option(
      '--hosts-dir <dir>',
      "containerd's registry hosts folder (<dir>/<host>/hosts.toml; default: registry.hostsDir of the config file)",
    )
    .option('--config <file>', 'config file (default: $DADI_CONFIG or /etc/dadi/config.yaml)')
    .option('--insecure', 'use plain HTTP for the registry')
    .option('--platform <os/arch>', 'platform to select from a multi-platform image (default: this machine)')
    .option('--json', 'print the result as JSON')
    .option('--timings', 'print where the time went (milliseconds per step) to stderr, or into the JSON')
    .action(
      async (
        ref: string,
        o: {
          json?: boolean;
          timings?: boolean;
          containerdAddress: string;
          namespace: string;
          snapshotter: string;
          hostsDir?: string;
          config?: string;
          insecure?: boolean;
          platform?: string;
        },
      ) => {
        // performance.now() counts from the process's start: node and the CLI before this action.
        const steps: { step: string; ms: number }[] = [{ step: 'node + CLI start', ms: Math.round(performance.now()) }];
        const modulesFrom = performance.now();
        const [{ hostsDirLookup, RegistryClient }, { parsePlatform }, { pullIntoContainerd }, { terminalProgress }] =
          await Promise.all([
            import('../registry/index.js'),
            import('../oci/index.js'),
            import('../snapshotter/pull.js'),
            import('./progress.js'),
          ]);
        const hostsDir = o.hostsDir ?? (await hostsDirOf(o.config));
        steps.push({ step: 'modules', ms: Math.round(performance.now() - modulesFrom) });
        const client = new RegistryClient({
          insecure: o.insecure ? true : undefined,
          platform: o.platform ? parsePlatform(o.platform) : undefined,
          hosts: hostsDir ? hostsDirLookup(hostsDir) : undefined,
        });
        const bars = await terminalProgress();
        let bar: ReturnType<NonNullable<typeof bars>['bar']> | undefined;
        try {
          const r = await pullIntoContainerd(ref, client, {
            address: o.containerdAddress,
            namespace: o.namespace,
            snapshotter: o.snapshotter,
            onLayer: (done, total) => {
              bar ??= bars?.bar('layer snapshots', total);
              bar?.update(done);
            },
            onStep: o.timings ? (step, ms) => steps.push({ step, ms }) : undefined,
          }).finally(() => bars?.stop());
          if (o.json) return printJson(o.timings ? { ...r, steps } : r);
          for (const s of steps) console.error(`${String(s.ms).padStart(6)} ms  ${s.step}`);
          console.log(r.name);
          console.error(
            `pulled ${r.name} (${r.manifestDigest}, ${r.layers} DADI layers left remote; ${r.registryBytes} bytes fetched)`,
          );
        } finally {
          await client.close();
        }
      },
    );
}

async function loadConfigOf(file: string | undefined) {
  const { loadConfig } = await import('../config/index.js');
  return (await loadConfig({ file })).config;
}

/**
 * registry.hostsDir of the config file; without a file, $DADI_HOSTS_DIR or the default, without
 * loading the config code (a pull is on a container's start path).
 */
async function hostsDirOf(file: string | undefined): Promise<string> {
  const { configFileOf } = await import('../config/file.js');
  const f = configFileOf({ file });
  // A named file that is missing is the loader's error to report.
  if (!f.required && !existsSync(f.path)) {
    return process.env.DADI_HOSTS_DIR ?? (await import('../registry/hosts.js')).DEFAULT_HOSTS_DIR;
  }
  return (await loadConfigOf(file)).registry.hostsDir;
}
