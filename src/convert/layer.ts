// Converting one layer: a writable LSMT layer (over the stack of the layers converted before it,
// or fresh with mkfs for the first), the source tar applied to its ext4, committed in the DADI
// layer format and saved in the work folder's record.

import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FileSink } from '../blockfile/sink.js';
import { DadiError } from '../errors.js';
import { applyLayer, Ext4, mkfs } from '../ext4/index.js';
import type { ComboDevice, WritableLayer } from '../format/lsmt/index.js';
import { DADI_LAYER_OUTPUT, wrapLayerOutput } from '../image/layer-output.js';
import { openLayerStack } from '../image/layer-stack.js';
import { createWritableLayer, stackWritable } from '../image/writable.js';
import type { Digest } from '../oci/digest.js';
import type { ChunkDigests } from '../p2p/chunk-digests.js';
import { uuidFromChainId } from './manifest.js';
import { clock } from './progress.js';
import { digestLayerFile } from './publish.js';
import type { LayerRecords } from './record.js';
import type { LayerTar } from './unpack.js';

/** The tar member mode of converted layers: fixed, so the output does not depend on the umask. */
const LAYER_FILE_MODE = 0o100644;

export interface LayerJob {
  /** Names the layer in errors. */
  label: string;
  chainId: Digest;
  parentChainId: Digest | undefined;
  diffId: Digest;
  vsize: number;
  settings: string;
  verifyDiffId: boolean;
  /** Progress: the phase finished, with its bytes and seconds. */
  emit: (phase: 'apply' | 'commit', bytes: number, seconds: number) => void;
}

export interface ConvertedLayerFile {
  /** The committed blob in the record store. */
  path: string;
  digest: Digest;
  size: number;
  /** Its chunk digest list, hashed with its digest. */
  chunks: ChunkDigests;
  seconds: { apply: number; commit: number };
}

/**
 * Convert layer `i` from its `tar` on top of the committed ones (`lowers`, bottom first):
 * create, [mkfs,] apply, commit. Scratch files go under `scratch`.
 */
export async function convertLayer(
  i: number,
  tar: LayerTar,
  lowers: readonly string[],
  scratch: string,
  records: LayerRecords,
  job: LayerJob,
): Promise<ConvertedLayerFile> {
  const uuid = uuidFromChainId(job.chainId);
  const parentUuid = job.parentChainId ? uuidFromChainId(job.parentChainId) : undefined;
  const dir = join(scratch, `layer-${i}`);
  await mkdir(dir, { recursive: true });
  const rw = await createWritableLayer(
    { data: join(dir, 'data'), index: join(dir, 'index') },
    {
      virtualSize: i === 0 ? job.vsize : 0,
      // The commit below writes DADI_LAYER_OUTPUT: compress its blocks while the apply writes them.
      scratch: { compressAhead: DADI_LAYER_OUTPUT.zfile },
      uuid,
      ...(parentUuid ? { parentUuid } : {}),
    },
  );
  let device: WritableLayer | ComboDevice = rw;
  const out = join(dir, 'overlaybd.commit');
  const seconds = { apply: 0, commit: 0 };
  let commitStart = 0;
  try {
    if (i === 0) await mkfs(rw, { size: job.vsize });
    else {
      const stack = await openLayerStack(
        lowers.map((path) => ({ kind: 'file', path })),
        undefined,
        { name: job.label },
      );
      device = await stackWritable(rw, stack.device);
    }
    const t = clock();
    const fs = await Ext4.open(device);
    await applyLayer(fs, tar, { name: job.label });
    await fs.close();
    const plain = await tar.finish(); // the rest of the stream: the tar's end padding; checks the blob digest
    if (job.verifyDiffId) {
      const got = plain.digest;
      if (got !== job.diffId) {
        throw new DadiError(
          'ECORRUPT',
          `${job.label}: uncompressed content hashes to ${got}, the config's diff_id is ${job.diffId}`,
        );
      }
    }
    seconds.apply = clock() - t;
    job.emit('apply', plain.size, seconds.apply);

    commitStart = clock();
    const sink = wrapLayerOutput(await FileSink.create(out), DADI_LAYER_OUTPUT, LAYER_FILE_MODE);
    await device.commit(sink, { uuid, ...(parentUuid ? { parentUuid } : {}) });
  } finally {
    await tar.close();
    await device.close();
  }
  const chunks = await digestLayerFile(out);
  const { digest, size } = chunks.blob;
  seconds.commit = clock() - commitStart;
  const path = await records.save({ chainId: job.chainId, settings: job.settings, digest, size, uuid }, out);
  await rm(dir, { recursive: true, force: true });
  job.emit('commit', size, seconds.commit);
  return { path, digest, size, chunks, seconds };
}
