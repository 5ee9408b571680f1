// `dadi convert SRC DST`: convert an OCI/Docker image into an overlaybd image (registry refs or
// `oci:DIR[:TAG]` layouts on either side, every platform of an index with --all-platforms);
// `dadi digests add REF`: chunk digest lists for an image converted without them. Thin: parses
// options, calls convert/, prints.

import type { Command } from 'commander';
import {
  addChunkDigests,
  type ConvertResult,
  convertAllPlatforms,
  convertImage,
  lineProgress,
  type ProgressEvent,
} from '../convert/index.js';
import { DadiError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import { formatSize } from '../util/size.js';
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

export function registerConvertCommands(program: Command): void {
  program
    .command('convert')
    .description(
      'convert an OCI/Docker image into an overlaybd image (SRC, DST: host/repo[:tag|@digest] or oci:DIR[:TAG])',
    )
    .argument('<src>', 'source image')
    .argument('<dst>', 'target image (a tag; layouts are created if absent)')
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
    .action(async (src: string, dst: string, o) => {
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
