// `dadi convert SRC DST`: convert an OCI/Docker image into an overlaybd image (registry refs or
// `oci:DIR[:TAG]` layouts on either side, every platform of an index with --all-platforms);
// `dadi digests add REF`: chunk digest lists for an image converted without them. Thin: parses
// options, calls convert/, prints.

import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  addChunkDigests,
  type BatchJob,
  type BatchOptions,
  type ConvertResult,
  convertAllPlatforms,
  convertBatch,
  convertImage,
  lineProgress,
  type ProgressEvent,
  parseBatchList,
} from '../convert/index.js';
import { DadiError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import { formatSize, parseSize } from '../util/size.js';
import { parseIntOption, printJson } from './output.js';
import { type Progress, terminalProgress } from './progress.js';

/** The phases a converted layer completes, in order (a reused layer skips them all). */
const PHASES = ['download', 'apply', 'commit', 'upload'] as const;

/** One bar per layer, advancing a step per completed phase; the other events print above the bars. */
function barProgress(p: Progress): (e: ProgressEvent) => void {
  const bars = new Map<number, ReturnType<Progress['bar']>>();
  return (e) => {
    if (e.kind === 'resolved') p.log(`${e.source}: ${e.layers} layer(s), manifest ${e.manifest} (${e.platform})`);
    else if (e.kind === 'manifest') p.log(`${e.target}: pushed manifest ${e.digest}`);
    else {
      let bar = bars.get(e.layer);
      if (!bar) {
        bar = p.bar(`layer ${e.layer + 1}/${e.layers} ${e.digest.slice(7, 19)}`, PHASES.length);
        bars.set(e.layer, bar);
      }
      const done = e.phase === 'reused' || e.phase === 'done' ? PHASES.length : PHASES.indexOf(e.phase) + 1;
      const size = e.bytes !== undefined ? ` ${formatSize(e.bytes)}` : '';
      bar.update(done, { status: `${e.phase}${size}` });
    }
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function printSummary(r: ConvertResult): void {
  console.log(`${r.target}: ${r.manifest.digest}`);
  for (const l of r.layers) {
    const how = l.reused ? 'reused' : `${(l.seconds.apply + l.seconds.commit).toFixed(2)} s`;
    console.log(`  layer ${l.index + 1}  ${l.digest}  ${formatSize(l.size).padStart(10)}  (${how})`);
  }
  console.log(`  ${r.layers.length} layer(s), ${r.platform}, ${r.seconds.toFixed(2)} s`);
}

/** The SRC=DST arguments and the --from-file list, as jobs. */
async function batchJobs(args: string[], fromFile: string | undefined): Promise<BatchJob[]> {
  for (const a of args)
    if (!a.includes('=')) throw new DadiError('EINVAL', `convert: "${a}": several images are given as SRC=DST`);
  const jobs = parseBatchList(args.join('\n'), 'arguments');
  if (fromFile) {
    const text = await readFile(fromFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new DadiError('ENOTFOUND', `--from-file ${fromFile}: ${e.code ?? e.message}`);
    });
    jobs.push(...parseBatchList(text, fromFile));
  }
  if (jobs.length === 0) throw new DadiError('EINVAL', 'convert: give SRC DST, SRC=DST pairs or --from-file LIST');
  return jobs;
}

/** Convert several images; one line (or the JSON) per image; exit code 1 when any failed. */
async function runBatch(jobs: BatchJob[], o: BatchOptions & { json: boolean; quiet: boolean }): Promise<void> {
  if (o.jobs !== undefined && o.jobs < 1) throw new DadiError('EINVAL', '--jobs: at least 1');
  const r = await convertBatch(jobs, {
    ...o,
    onImage: (i) => {
      if (o.json || o.quiet) return;
      if (i.ok) {
        const b = i.blobs;
        const reused = i.result.layers.filter((l) => l.reused).length;
        console.log(
          `${i.target}: ${i.result.manifest.digest} (${i.result.layers.length} layer(s), ${reused} reused; ` +
            `${b.uploaded.length} uploaded, ${b.mounted.length} mounted, ${b.present.length} present; ${i.result.seconds.toFixed(2)} s)`,
        );
      } else console.error(`${i.source} → ${i.target}: failed: ${i.error}`);
    },
  });
  if (o.json) printJson(r);
  else if (!o.quiet)
    console.log(
      `${r.images.length - r.failed}/${r.images.length} image(s) converted, ${r.concurrency} at once, ${r.seconds.toFixed(2)} s`,
    );
  if (r.failed > 0) process.exitCode = 1;
}

export function registerConvertCommands(program: Command): void {
  program
    .command('convert')
    .description(
      'convert an OCI/Docker image into an overlaybd image (SRC, DST: host/repo[:tag|@digest] or oci:DIR[:TAG]); ' +
        'several at once as SRC=DST SRC2=DST2 … or --from-file LIST',
    )
    .argument('[images...]', 'SRC DST (one image), or SRC=DST pairs (several)')
    .option('--from-file <list>', 'convert the images listed in LIST, one "SRC DST" a line (# comments)')
    .option('--jobs <n>', 'several images: how many convert at once', '1')
    .option(
      '--memory-budget <size>',
      'several images: memory the concurrent conversions may use (default: half of RAM)',
    )
    .option('--platform <os/arch[/variant]>', "platform picked from a multi-arch index (default: this machine's)")
    .option('--all-platforms', 'convert every platform of a multi-arch index into a converted index')
    .option('--oci', 'OCI media types for manifest, config and layers (default: Docker)')
    .option('--vsize <GB>', 'virtual disk size in GiB', '64')
    .option(
      '--workdir <dir>',
      'work folder: scratch files and the record of converted layers (default ~/.cache/dadi/convert)',
    )
    .option('--no-reuse', 'convert every layer again, ignoring the record of finished layers')
    .option('--downloads <n>', 'source layers downloaded at once', '4')
    .option('--insecure <host>', 'reach this registry host over plain HTTP (repeatable)', collect)
    .option('--skip-tls-verify', 'do not verify registry TLS certificates')
    .option('-q, --quiet', 'no progress output')
    .option('--json', 'print the result as JSON (manifest digest, layers, timings)')
    .action(async (args: string[], o) => {
      const vsizeGB = parseIntOption(o.vsize, '--vsize');
      if (vsizeGB < 1) throw new DadiError('EINVAL', '--vsize: at least 1 (GiB)');
      const downloads = parseIntOption(o.downloads, '--downloads');
      if (downloads < 1) throw new DadiError('EINVAL', '--downloads: at least 1');
      if (o.allPlatforms && o.platform)
        throw new DadiError('EINVAL', '--all-platforms and --platform exclude each other');
      // Bars on a terminal, plain lines otherwise; none for --quiet or --json.
      const bars = o.quiet || o.json ? undefined : await terminalProgress();
      const common = {
        oci: !!o.oci,
        vsize: vsizeGB * 1024 ** 3,
        workDir: o.workdir,
        reuse: o.reuse !== false,
        downloads,
        registry: { insecure: o.insecure, skipTlsVerify: !!o.skipTlsVerify },
        progress: bars ? barProgress(bars) : o.quiet || o.json ? undefined : lineProgress(),
      };
      const single = !o.fromFile && args.length === 2 && !args.some((a) => a.includes('='));
      if (!single) {
        if (o.allPlatforms) throw new DadiError('EINVAL', '--all-platforms converts one image at a time');
        // One line per finished image instead of bars (several images' layers would interleave).
        bars?.stop();
        return runBatch(await batchJobs(args, o.fromFile), {
          ...common,
          progress: undefined,
          platform: o.platform ? parsePlatform(o.platform) : undefined,
          jobs: parseIntOption(o.jobs, '--jobs'),
          memoryBudget: o.memoryBudget ? parseSize(o.memoryBudget, '--memory-budget') : undefined,
          json: !!o.json,
          quiet: !!o.quiet,
        });
      }
      const [src, dst] = args as [string, string];
      if (o.allPlatforms) {
        const all = await convertAllPlatforms(src, dst, common).finally(() => bars?.stop());
        if (o.json) printJson(all);
        else if (!o.quiet) {
          for (const r of all.images) printSummary(r);
          console.log(`${all.target}: ${all.index.digest} (index of ${all.images.length} platforms)`);
        }
        return;
      }
      const r = await convertImage(src, dst, {
        ...common,
        platform: o.platform ? parsePlatform(o.platform) : undefined,
      }).finally(() => bars?.stop());
      if (o.json) printJson(r);
      else if (!o.quiet) printSummary(r);
    });

  program
    .command('digests')
    .description("per-chunk sha256 lists of an image's layer blobs (what P2P peers' chunks are checked against)")
    .command('add')
    .description('publish a chunk digest list for every layer of REF that has none, and re-tag REF with them')
    .argument('<ref>', 'image by tag: host/repo:tag or oci:DIR:TAG')
    .option('--platform <os/arch[/variant]>', "platform picked from a multi-arch index (default: this machine's)")
    .option('--insecure <host>', 'reach this registry host over plain HTTP (repeatable)', collect)
    .option('--skip-tls-verify', 'do not verify registry TLS certificates')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, o) => {
      const r = await addChunkDigests(ref, {
        platform: o.platform ? parsePlatform(o.platform) : undefined,
        registry: { insecure: o.insecure, skipTlsVerify: !!o.skipTlsVerify },
      });
      if (o.json) return printJson(r);
      console.log(`${r.ref}: ${r.manifest.digest}`);
      for (const l of r.layers) {
        console.log(`  ${l.digest}  ${l.added ? 'added' : 'kept'} ${l.chunkDigests.digest}`);
      }
    });
}
