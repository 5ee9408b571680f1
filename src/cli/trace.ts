// `dadi record-trace` and `dadi trace ls|push`: make an image's trace and publish it as the
// reference's acceleration layer. record-trace runs the image (the run machinery, the daemon
// recording the lower layers' reads) until the command exits or --time expires (SIGTERM, then
// SIGKILL after another --time), then pushes NEWREF = the image + the acceleration layer.
// `trace` manages the traces auto-trace stored on this host.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { DadiError } from '../errors.js';
import type { ResolvedRunImage } from '../image/resolve-image.js';
import { publishTraceImage } from '../image/trace-image.js';
import { decodeTrace } from '../prefetch/trace-format.js';
import { TraceStore } from '../prefetch/trace-store.js';
import { DaemonClient } from '../runtime/client.js';
import { runContainer } from '../runtime/container.js';
import { registryLayerSpecs } from '../runtime/layer-spec.js';
import { statePaths } from '../runtime/state.js';
import { withAtomicOutput } from '../util/atomic-output.js';
import { formatSize } from '../util/size.js';
import { openRemoteContext } from './context.js';
import { printJson } from './output.js';
import { showRecording } from './prefetch-progress.js';
import { terminalProgress } from './progress.js';

const stateOption = ['--state <dir>', 'daemon state folder (default: $DADI_STATE or /run/dadi)'] as const;

/** Push NEWREF = IMAGE + acceleration layer holding `trace`; prints the manifest digest unless `json`. */
async function publish(
  image: string,
  newRef: string,
  trace: Uint8Array,
  o: { insecure?: boolean; platform?: string; json?: boolean },
) {
  const ctx = await openRemoteContext({ insecure: o.insecure, cache: false, platform: o.platform });
  try {
    const r = await publishTraceImage(image, newRef, trace, ctx);
    if (!o.json) {
      console.log(r.manifestDigest);
      console.error(`pushed ${newRef}: ${image} + acceleration layer ${r.layer.digest} (${formatSize(r.layer.size)})`);
    }
    return { image, newRef, manifestDigest: r.manifestDigest, layer: { digest: r.layer.digest, size: r.layer.size } };
  } finally {
    await ctx.close();
  }
}

export function registerTraceCommands(program: Command): void {
  program
    .command('record-trace')
    .description('run an image, record the blocks it reads, push it with the trace as an acceleration layer')
    .argument('<ref>', 'the image: host[:port]/repo[:tag|@digest]')
    .argument('<newref>', 'where to push the image with its trace: host[:port]/repo:tag')
    .argument('[cmd...]', 'command and arguments (after --) replacing the image Cmd')
    .option('--time <seconds>', 'stop the container after this long (SIGTERM, SIGKILL after as long again)', '60')
    .option('--trace-out <file>', 'also keep the trace file here')
    .option('--insecure', 'use plain HTTP for the registry')
    .option('--platform <os/arch>', 'platform to select from a multi-platform image (default: this machine)')
    .option('--json', 'print the result (reads recorded, exit code, pushed manifest, acceleration layer) as JSON')
    .option(...stateOption)
    .action(
      async (
        ref: string,
        newRef: string,
        cmd: string[],
        o: { time: string; traceOut?: string; insecure?: boolean; platform?: string; state?: string; json?: boolean },
      ) => {
        const seconds = Number(o.time);
        if (!(seconds > 0 && seconds <= 86400))
          throw new DadiError('EINVAL', `--time: "${o.time}" is not 1..86400 seconds`);
        const client = await DaemonClient.connect({ stateDir: o.state });
        const img = await client.resolve<ResolvedRunImage>(ref, o.platform);
        if (img.accelerationLayer) throw new DadiError('EEXIST', `${ref}: the image already has an acceleration layer`);
        const dir = await mkdtemp(join(tmpdir(), 'dadi-record-trace-'));
        const stop = new AbortController();
        const timer = setTimeout(() => {
          console.error(`dadi: record-trace: --time ${seconds}s reached, stopping the container`);
          stop.abort();
        }, seconds * 1000);
        // The container's output goes to stdout: the bar (stderr) only when stdout is not that terminal too.
        const bars = process.stdout.isTTY ? undefined : await terminalProgress();
        const recording = new AbortController();
        const shown = bars ? showRecording(client, seconds, bars, recording.signal) : undefined;
        try {
          const file = join(dir, 'trace');
          const r = await runContainer({
            layers: registryLayerSpecs(img.registry, img.repository, img.layers),
            config: img.config,
            cmd: cmd.length ? cmd : undefined,
            rm: true,
            imageRef: img.pinned,
            stateDir: o.state,
            stop: stop.signal,
            killGraceMs: seconds * 1000,
            trace: { record: file },
          }).finally(async () => {
            recording.abort();
            await shown;
            bars?.stop();
          });
          clearTimeout(timer);
          if (r.trace?.warning) throw new DadiError('EIO', `record-trace ${ref}: ${r.trace.warning}`);
          const trace = await readFile(file).catch(() => {
            throw new DadiError('EIO', `record-trace ${ref}: the daemon wrote no trace (see its log)`);
          });
          const records = decodeTrace(trace, file).length;
          if (!o.json) console.error(`recorded ${records} reads (container exited with ${r.exitCode})`);
          if (o.traceOut) await withAtomicOutput(o.traceOut, {}, (out) => out.handle.writeFile(trace));
          const pushed = await publish(img.pinned, newRef, trace, o);
          if (o.json) printJson({ ...pushed, records, exitCode: r.exitCode });
        } finally {
          clearTimeout(timer);
          await rm(dir, { recursive: true, force: true });
        }
      },
    );

  const trace = program.command('trace').description("traces auto-trace recorded on this host (in the daemon's state)");
  trace
    .command('ls')
    .description('list the stored traces')
    .option('--json')
    .option(...stateOption)
    .action(async (o: { json?: boolean; state?: string }) => {
      const list = await new TraceStore(statePaths(o.state).traces).list();
      if (o.json) return printJson(list);
      for (const t of list)
        console.log(`${t.manifestDigest}  ${t.records} reads  ${formatSize(t.bytes)}  ${t.recordedAt}  ${t.image}`);
      if (list.length === 0) console.error('no traces');
    });
  trace
    .command('push')
    .description('push IMAGE with its stored trace as an acceleration layer to NEWREF')
    .argument('<image>', 'the traced image: its manifest digest or host/repo@digest (as `trace ls` shows)')
    .argument('<newref>', 'where to push: host[:port]/repo:tag')
    .option('--insecure', 'use plain HTTP for the registry')
    .option('--json', 'print the result (pushed manifest, acceleration layer) as JSON')
    .option(...stateOption)
    .action(async (image: string, newRef: string, o: { insecure?: boolean; state?: string; json?: boolean }) => {
      const store = new TraceStore(statePaths(o.state).traces);
      const info = (await store.list()).find((t) => t.manifestDigest === image || t.image === image);
      if (!info) throw new DadiError('ENOTFOUND', `no stored trace for ${image} (see dadi trace ls)`);
      const pushed = await publish(info.image, newRef, await store.bytes(info.manifestDigest), o);
      if (o.json) printJson({ ...pushed, records: info.records });
    });
}
