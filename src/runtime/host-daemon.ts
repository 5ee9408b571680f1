// The host daemon as dadi runs it: local layer files plus registry blobs through the host's block
// cache, which the daemon claims as it starts (image/host-cache.ts) so that it is the cache's one
// owner; the cache itself opens on the first remote read. Both `dadi daemon` and the on-demand
// auto-start entry call this.

import { type CacheClaim, cacheHeldNote, claimHostCache } from '../image/host-cache.js';
import { ImageRecords, resolveWithRecord } from '../image/image-records.js';
import { defaultCacheDir, openRemoteContext, type RemoteContext } from '../image/remote-context.js';
import { resolveRunImage } from '../image/resolve-image.js';
import { parsePlatform } from '../oci/index.js';
import { layerPullConfigFromEnv } from '../prefetch/layer-pull-plan.js';
import { runDaemonForeground } from './daemon.js';

export async function runHostDaemon(opts: { stateDir?: string; cacheDir?: string } = {}): Promise<void> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const claimed = await claimHostCache(cacheDir, 'the dadi daemon');
  let claim: CacheClaim | undefined;
  if ('heldBy' in claimed)
    process.stderr.write(`dadi daemon: ${cacheHeldNote(cacheDir, claimed.heldBy)}; reading without it\n`);
  else claim = claimed;
  // Checked before the daemon starts, so a bad DADI_PULL* value stops it with its message.
  const backgroundPull = layerPullConfigFromEnv();
  // Only the cache's owner writes beside it.
  const records = claim ? new ImageRecords(cacheDir) : undefined;
  const log = (m: string) => process.stderr.write(`${new Date().toISOString()} dadi daemon: ${m}\n`);
  let ctx: Promise<RemoteContext> | undefined;
  // Without the claim (another process held the cache at start) the context tries once more.
  const remote = () => (ctx ??= openRemoteContext({ cacheDir, claim, role: 'the dadi daemon' }));
  try {
    await runDaemonForeground({
      stateDir: opts.stateDir,
      remote,
      backgroundPull,
      log,
      cacheDir,
      resolveImage: async (ref, platform) => {
        const c = await remote();
        const resolve = () => resolveRunImage(ref, platform ? { ...c, platform: parsePlatform(platform) } : c);
        return records ? resolveWithRecord(records, ref, platform, resolve, log) : resolve();
      },
    });
  } finally {
    if (ctx) await (await ctx).close();
    else await claim?.close();
  }
}
