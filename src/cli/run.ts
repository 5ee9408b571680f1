// `dadi daemon|mount|umount|ps|run|rm`: run images lazily on this host. The daemon owns the
// devices (FUSE + loop + ext4); these commands are its clients and start it on demand.

import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import type { ResolvedRunImage } from '../image/resolve-image.js';
import { DAEMON_THREADPOOL_SIZE, DaemonClient } from '../runtime/client.js';
import {
  createContainer,
  discardContainer,
  listContainers,
  type RootfsMode,
  removeContainer,
  runContainer,
} from '../runtime/container.js';
import { registryLayerSpecs } from '../runtime/layer-spec.js';
import type { DeviceStatus } from '../runtime/status.js';
import { formatSize } from '../util/size.js';
import { StepTimer, type TimedStep } from '../util/step-timer.js';
import { printJson } from './output.js';
import { type TraceCliOptions, traceOptions, traceRequest } from './trace-options.js';

// Only light modules load up front: `dadi run` has the daemon resolve the image and fetch blocks,
// so the registry client, the cache and the format code never load in this process.

const stateOption = ['--state <dir>', 'daemon state folder (default: $DADI_STATE or /run/dadi)'] as const;
const configOption = ['--config <file>', 'config file (default: $DADI_CONFIG or /etc/dadi/config.yaml)'] as const;

/**
 * Resolve REF (in the daemon, started on demand) to the daemon's layer specs. Unless --no-trace,
 * the daemon fetches the image's acceleration layer (its trace) with the layers' indexes.
 */
async function resolveLayers(
  ref: string,
  o: { platform?: string; state?: string } & TraceCliOptions,
  timer?: StepTimer,
) {
  const client = await DaemonClient.connect({ stateDir: o.state });
  timer?.lap('daemon connect');
  const img = await client.resolve<ResolvedRunImage & { timings?: TimedStep[] }>(ref, o.platform, {
    trace: o.trace !== false,
  });
  timer?.lap('resolve');
  timer?.detail('resolve', img.timings);
  return { img, client, specs: registryLayerSpecs(img.registry, img.repository, img.layers) };
}

const platformOption = [
  '--platform <os/arch>',
  'platform to select from a multi-platform image (default: this machine)',
] as const;

/** The run's steps on stderr (stdout is the container's): a line of text, or of JSON. */
function printTimings(timer: StepTimer, json: boolean): void {
  const totalMs = Math.round(performance.now());
  if (json) process.stderr.write(`${JSON.stringify({ timings: timer.steps, totalMs })}\n`);
  else process.stderr.write(`dadi: timings: ${timer.format()}; total ${totalMs} ms\n`);
}

export function registerRunCommands(program: Command): void {
  program
    .command('daemon')
    .description('run the host daemon in the foreground (normally started on demand)')
    .option(...stateOption)
    .option('--cache-dir <dir>', 'block cache directory (default: cacheConfig.cacheDir of the config file)')
    .option(...configOption)
    .option(
      '--metrics-address <host:port>',
      'serve Prometheus metrics at http://HOST:PORT/metrics (a bare PORT listens on 127.0.0.1; default: metrics.address of the config file, else off)',
    )
    .option('--p2p-root <url>', 'read registry blobs through the P2P tree of this root (env DADI_P2P_ROOT)')
    .option(
      '--p2p-listen <host:port>',
      'where the P2P agent serves its children (env DADI_P2P_LISTEN; default 0.0.0.0:19145)',
    )
    .option('--p2p-advertise <url>', 'the URL children reach this agent at (default from --p2p-listen)')
    .option('--p2p-host-id <id>', "this host's id in the trees (default hostname:port)")
    .action(async (o) => {
      // FUSE readers pin threadpool threads: the pool size must be set before Node starts it.
      if (!process.env.UV_THREADPOOL_SIZE) {
        const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
          stdio: 'inherit',
          env: { ...process.env, UV_THREADPOOL_SIZE: String(DAEMON_THREADPOOL_SIZE) },
        });
        for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => child.kill(s));
        process.exitCode = await new Promise<number>((res) => child.on('exit', (c) => res(c ?? 1)));
        return;
      }
      const [{ runHostDaemon }, { parseMetricsAddress }] = await Promise.all([
        import('../runtime/host-daemon.js'),
        import('../runtime/metrics-server.js'),
      ]);
      const metricsAddress = o.metricsAddress ? parseMetricsAddress(o.metricsAddress, '--metrics-address') : undefined;
      const root = o.p2pRoot ?? process.env.DADI_P2P_ROOT;
      const p2p = root
        ? {
            root,
            listen: o.p2pListen ?? process.env.DADI_P2P_LISTEN ?? '0.0.0.0:19145',
            advertise: o.p2pAdvertise ?? process.env.DADI_P2P_ADVERTISE,
            hostId: o.p2pHostId ?? process.env.DADI_P2P_HOST_ID,
          }
        : undefined;
      await runHostDaemon({ stateDir: o.state, cacheDir: o.cacheDir, configFile: o.config, metricsAddress, p2p });
    });

  const mount = program
    .command('mount')
    .description("mount an image's filesystem (lazily, through FUSE + loop)")
    .argument('<ref>', 'host[:port]/repo[:tag|@digest]')
    .argument('<dir>', 'existing directory')
    .option('--rw', 'writable: a writable block layer on top')
    .option(
      '--wait-prefetch',
      'wait until the trace replay and background layer pulls end (progress bars on a terminal)',
    )
    .option('--json', 'print the mounted device as JSON (after the prefetch with --wait-prefetch)')
    .option(...platformOption)
    .option(...stateOption);
  traceOptions(mount).action(
    async (
      ref: string,
      dir: string,
      o: { rw?: boolean; state?: string; platform?: string; waitPrefetch?: boolean; json?: boolean } & TraceCliOptions,
    ) => {
      const { specs, img, client } = await resolveLayers(ref, o);
      const dev = await client.mount({
        layers: specs,
        target: dir,
        rw: !!o.rw,
        label: img.pinned,
        trace: traceRequest(img, o),
      });
      console.error(`mounted ${ref} on ${dev.target} (${dev.id}, ${o.rw ? 'rw' : 'ro'}, ${img.layers.length} layers)`);
      let prefetch: DeviceStatus | undefined;
      if (o.waitPrefetch) {
        const [{ waitForPrefetch }, { terminalProgress }] = await Promise.all([
          import('./prefetch-progress.js'),
          import('./progress.js'),
        ]);
        const bars = await terminalProgress();
        prefetch = await waitForPrefetch(client, dev.id, bars).finally(() => bars?.stop());
      }
      if (o.json) printJson({ device: dev, ...(o.waitPrefetch ? { prefetch: prefetch ?? null } : {}) });
    },
  );

  program
    .command('umount')
    .description('unmount what `dadi mount` mounted (filesystem, loop device, FUSE export)')
    .argument('<dir>', 'mount directory or device id')
    .option(...stateOption)
    .option('--json', 'print the unmounted device (id, target, trace prefetch counters) as JSON')
    .action(async (dir: string, o) => {
      const client = await DaemonClient.connect({ stateDir: o.state, autoStart: false });
      const r = await client.umount(dir);
      if (o.json) printJson(r);
      console.error(`unmounted ${r.target} (${r.id})`);
    });

  program
    .command('ps')
    .description('list devices and containers')
    .option(...stateOption)
    .option('--json')
    .action(async (o) => {
      const client = await DaemonClient.connect({ stateDir: o.state, autoStart: false }).catch(() => undefined);
      const devices = client ? await client.ps() : [];
      const containers = await listContainers({ stateDir: o.state });
      if (o.json) return printJson({ devices, containers });
      for (const d of devices) {
        console.log(
          `${d.id}  ${d.rw ? 'rw' : 'ro'}  ${d.target}  ${d.label ?? ''}  read ${formatSize(d.bytesRead ?? 0)}`,
        );
      }
      for (const c of containers)
        console.log(`${c.name}  ${c.status}${c.exitCode !== undefined ? ` (${c.exitCode})` : ''}  ${c.imageRef ?? ''}`);
      if (devices.length === 0 && containers.length === 0) console.error('no devices or containers');
    });

  const run = program
    .command('run')
    .description('run a container from an image, lazily (runc; writable block layer by default)')
    .argument('<ref>', 'host[:port]/repo[:tag|@digest]')
    .argument('[cmd...]', 'command and arguments (after --) replacing the image Cmd')
    .option('--rm', 'remove the container and its writable layer when it exits')
    .option('--name <name>', 'container name (default: random)')
    .option('--overlay', 'writable rootfs as overlayfs over the read-only image (instead of a block layer)')
    .option('--entrypoint <path>', "replace the image's entrypoint")
    .option('-e, --env <K=V...>', 'extra environment variables')
    .option('-u, --user <user>', 'user[:group] to run as')
    .option('-w, --workdir <dir>', 'working directory')
    .option('--timings', 'print where the launch time went (stderr): CLI start, daemon, resolve, mount, bundle, runc')
    .option('--json', 'with --timings: print them as one JSON line (stderr)')
    .option(...platformOption)
    .option(...stateOption);
  traceOptions(run)
    .option('--trace-stats', 'print what the trace prefetch did (JSON, on stderr) when the container exits')
    .action(
      async (
        ref: string,
        cmd: string[],
        o: {
          platform?: string;
          rm?: boolean;
          name?: string;
          overlay?: boolean;
          entrypoint?: string;
          env?: string[];
          user?: string;
          workdir?: string;
          state?: string;
          timings?: boolean;
          json?: boolean;
          traceStats?: boolean;
        } & TraceCliOptions,
      ) => {
        // From the process start (performance's time origin): the first step is the CLI's own start.
        const timer = o.timings ? new StepTimer(0) : undefined;
        timer?.lap('cli start');
        const rootfsMode: RootfsMode = o.overlay ? 'overlay' : 'block';
        // The container's record and folders are made while the daemon resolves the image.
        const created = createContainer({ name: o.name, rootfsMode, stateDir: o.state });
        created.catch(() => {}); // its failure is runContainer's to report
        const { specs, img, client } = await resolveLayers(ref, o, timer).catch(async (e) => {
          await discardContainer(created, { stateDir: o.state });
          throw e;
        });
        const r = await runContainer({
          created,
          daemon: client,
          timer,
          layers: specs,
          config: img.config,
          cmd: cmd.length ? cmd : undefined,
          entrypoint: o.entrypoint !== undefined ? [o.entrypoint] : undefined,
          env: o.env,
          user: o.user,
          workingDir: o.workdir,
          rm: !!o.rm,
          imageRef: img.pinned,
          stateDir: o.state,
          trace: traceRequest(img, o),
        });
        if (o.traceStats) console.error(JSON.stringify({ trace: r.trace ?? null }));
        process.exitCode = r.exitCode;
        if (timer) printTimings(timer, !!o.json);
      },
    );

  program
    .command('commit')
    .description("commit a stopped container's writable layer as a new image layer and push the image")
    .argument('<container>')
    .argument('<ref>', 'where to push: host[:port]/repo:tag (same registry as the image)')
    .option('-m, --message <msg>', 'commit message (layer user tag and history comment)')
    .option('--insecure', 'use plain HTTP for the registry')
    .option('--json', 'print the result (manifest digest, new layer) as JSON')
    .option(...stateOption)
    .action(
      async (
        name: string,
        ref: string,
        o: { insecure?: boolean; message?: string; state?: string; json?: boolean },
      ) => {
        const { openRemoteContext } = await import('./context.js');
        const ctx = await openRemoteContext({ insecure: o.insecure, cache: false });
        try {
          const { commitContainerImage } = await import('../runtime/commit-image.js');
          const r = await commitContainerImage(name, ref, ctx, { stateDir: o.state, message: o.message });
          if (o.json) return printJson({ container: name, ref, manifestDigest: r.manifestDigest, layer: r.layer });
          console.log(r.manifestDigest);
          console.error(`committed ${name} as ${ref}: new layer ${r.layer.digest} (${formatSize(r.layer.size)})`);
        } finally {
          await ctx.close();
        }
      },
    );

  program
    .command('rm')
    .description('remove a stopped container and its writable layer')
    .argument('<name...>')
    .option(...stateOption)
    .action(async (names: string[], o) => {
      for (const n of names) await removeContainer(n, { stateDir: o.state });
    });
}
