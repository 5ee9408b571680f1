// The JSON each command prints with `--json`: one zod schema per command, the single source of
// docs/json-output.md (scripts/json-output-doc.ts writes it; a test keeps the two equal) and of the
// tests that check real outputs against them. Objects are strict where a script would read the
// keys (a new key is a schema change to document), open where they carry detail from elsewhere.

import { z } from 'zod';

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const count = z.number().int().min(0);
const blob = z.strictObject({ digest, size: count });
const fetched = z
  .strictObject({ requests: count, bytesFetched: count, cacheHitBytes: count })
  .describe('what the command read from registries, and from the block cache');
const exportStats = {
  virtualSize: count,
  bytesRead: count,
  bytesWritten: count,
  extents: count,
  seconds: z.number().min(0),
  fetched,
};
const byReason = z.strictObject({ read: count, readahead: count, background: count });
const bySource = z.strictObject({ registry: count, root: count, peer: count });

const deviceStatus = z.strictObject({
  id: z.string(),
  target: z.string(),
  rw: z.boolean(),
  label: z.string().nullable(),
  readBytes: count,
  writtenBytes: count,
  trace: z
    .strictObject({
      mode: z.enum(['replay', 'record']),
      source: z.string().nullable(),
      plannedReads: count,
      doneReads: count,
      failedReads: count,
      bytes: count,
      finished: z.boolean(),
      recordedReads: count,
    })
    .nullable(),
  pulls: z.array(z.strictObject({ layer: z.string(), state: z.string(), fetchedBytes: count, sizeBytes: count })),
});

/** A mounted device as the daemon reports it (`ps`, `mount`). */
const deviceInfo = z.looseObject({
  id: z.string(),
  target: z.string(),
  rw: z.boolean(),
  layers: z.array(z.looseObject({ kind: z.string(), ref: z.string(), blobBytesRead: count })),
  loop: z.string(),
  fuseFile: z.string(),
  virtualSize: count,
  bytesRead: count,
  bytesWritten: count,
  createdAt: z.string(),
});

const status = z.strictObject({
  daemon: z.strictObject({
    pid: count,
    protocolVersion: count,
    stateDir: z.string(),
    cacheDir: z.string().nullable(),
    startedAt: z.string(),
    uptimeSeconds: z.number().min(0),
    metricsUrl: z.string().nullable(),
  }),
  requests: z.strictObject({ inFlight: z.record(z.string(), z.number()), total: z.record(z.string(), count) }),
  devices: z.array(deviceStatus),
  containers: z.strictObject({ created: count, running: count, exited: count }),
  cache: z
    .strictObject({
      dir: z.string(),
      capacityBytes: count,
      usageBytes: count,
      entries: count,
      reads: count,
      readBytes: count,
      hitBytes: count,
      hitPages: count,
      missBytes: count,
      missPages: count,
      fetches: byReason,
      fetchBytes: byReason,
      fetchesInFlight: byReason,
      evictedBytes: count,
      blobEvictions: count,
    })
    .nullable(),
  registry: z
    .strictObject({ requests: count, retries: count, responseBytes: count, rangeReads: count, rangeBytes: count })
    .nullable(),
  fetches: z.array(
    z.strictObject({
      source: z.enum(['registry', 'root', 'peer']),
      count,
      bytes: count,
      sumSeconds: z.number().min(0),
      buckets: z.array(z.strictObject({ le: z.number().nullable(), count })),
    }),
  ),
  p2p: z
    .strictObject({
      bytes: bySource,
      requests: bySource,
      failures: bySource,
      corruptChunks: count,
      registryFallbacks: count,
      reparents: count,
      hedgedRequests: count,
      pushedChunks: count,
      pushedBytes: count,
      receivedPushes: count,
      servedBytes: count,
      servedRequests: count,
    })
    .nullable(),
  errors: z.array(z.strictObject({ kind: z.string(), code: z.string(), count })),
});

const pushed = { image: z.string(), newRef: z.string(), manifestDigest: digest, layer: blob, records: count };

/** Command (as typed after `dadi`) → what `--json` prints on stdout. */
/** One converted image (`dadi convert SRC DST --json`, and each image of a several-image run). */
const convertedImage = z.strictObject({
  source: z.string(),
  target: z.string(),
  platform: z.string(),
  sourceManifest: digest,
  manifest: z.strictObject({ digest, size: count, mediaType: z.string() }),
  config: blob,
  layers: z.array(
    z.looseObject({
      index: count,
      source: z.looseObject({ digest, size: count }),
      diffId: digest,
      digest,
      size: count,
      reused: z.boolean(),
    }),
  ),
  seconds: z.number().min(0),
});

export const JSON_OUTPUTS: Record<string, { about: string; schema: z.ZodType }> = {
  status: { about: "the daemon's figures, the same as its /metrics (docs/operations.md)", schema: status },
  ps: {
    about: 'mounted devices and the containers of the state folder',
    schema: z.strictObject({
      devices: z.array(deviceInfo),
      containers: z.array(z.looseObject({ name: z.string(), status: z.enum(['created', 'running', 'exited']) })),
    }),
  },
  mount: {
    about: 'the mounted device; with --wait-prefetch also its status once the prefetch ended (null: it went away)',
    schema: z.strictObject({ device: deviceInfo, prefetch: deviceStatus.nullable().optional() }),
  },
  umount: {
    about: 'the unmounted device and what its trace prefetch did',
    schema: z.strictObject({ id: z.string(), target: z.string(), trace: z.looseObject({}).optional() }),
  },
  commit: {
    about: "the pushed image's manifest and the new layer",
    schema: z.strictObject({ container: z.string(), ref: z.string(), manifestDigest: digest, layer: blob }),
  },
  convert: {
    about:
      'the converted image: manifest, config, and per layer its source, DADI blob and phase timings; ' +
      'with several images (SRC=DST, --from-file), per image that or its error, with how its layer blobs arrived',
    schema: z.union([
      convertedImage,
      z.strictObject({
        images: z.array(
          z.union([
            z.strictObject({
              source: z.string(),
              target: z.string(),
              ok: z.literal(true),
              result: convertedImage,
              blobs: z.strictObject({ mounted: z.array(digest), uploaded: z.array(digest), present: z.array(digest) }),
            }),
            z.strictObject({ source: z.string(), target: z.string(), ok: z.literal(false), error: z.string() }),
          ]),
        ),
        concurrency: count,
        seconds: z.number().min(0),
        failed: count,
      }),
    ]),
  },
  'digests add': {
    about: 'per layer: its chunk digest list and whether this run added it; the manifest now under the tag',
    schema: z.strictObject({
      ref: z.string(),
      manifest: z.strictObject({ digest, mediaType: z.string() }),
      layers: z.array(z.strictObject({ digest, chunkDigests: blob, added: z.boolean() })),
    }),
  },
  ls: {
    about: "a directory's entries",
    schema: z.array(
      z.looseObject({
        name: z.string(),
        kind: z.string(),
        mode: count,
        uid: count,
        gid: count,
        size: count,
        mtime: z.number(),
      }),
    ),
  },
  stat: {
    about: "one file's inode (mode in octal, times as ISO dates with nanoseconds)",
    schema: z.looseObject({
      path: z.string(),
      ino: count,
      kind: z.string(),
      mode: z.string(),
      uid: count,
      gid: count,
      size: count,
      nlink: count,
    }),
  },
  'image export': {
    about: 'the raw disk written and what it took',
    schema: z.strictObject({
      out: z.string(),
      ref: z.string(),
      digest: digest.optional(),
      layers: count,
      ...exportStats,
    }),
  },
  'layer export': {
    about: 'the raw disk written from a layer stack and what it took',
    schema: z.strictObject({ out: z.string(), layers: z.array(z.string()), ...exportStats }),
  },
  'layer inspect': {
    about: "a layer file's wrappings (tar, ZFile) and LSMT header/trailer",
    schema: z.looseObject({
      file: z.string(),
      fileSize: count,
      wrapping: z.array(z.enum(['tar', 'zfile', 'lsmt'])),
      lsmt: z.looseObject({ kind: z.string(), virtualSize: count, uuid: z.string(), parentUuid: z.string() }),
    }),
  },
  inspect: {
    about: "a registry image's manifest, config and layers",
    schema: z.strictObject({
      ref: z.string(),
      digest,
      mediaType: z.string(),
      indexes: z.array(z.strictObject({ digest, mediaType: z.string() })),
      platform: z.string().optional(),
      config: z.strictObject({ digest, size: count, config: z.unknown() }),
      layers: z.array(
        z.strictObject({
          digest,
          size: count,
          mediaType: z.string(),
          overlaybd: z.boolean(),
          annotations: z.record(z.string(), z.string()),
        }),
      ),
      totalSize: count,
    }),
  },
  'blob push': {
    about: 'the uploaded blob (how: uploaded, or skipped when the registry had it)',
    schema: z.strictObject({ repo: z.string(), digest, size: count, how: z.string() }),
  },
  'blob pull': {
    about: 'the downloaded, digest-verified blob',
    schema: z.strictObject({ ref: z.string(), digest, size: count, out: z.string() }),
  },
  pull: {
    about: 'the image pulled into containerd (layers stay in the registry)',
    schema: z.strictObject({ name: z.string(), manifestDigest: digest, layers: count, registryBytes: count }),
  },
  'cache ls': {
    about: 'the block cache: usage, capacity and its blobs (least recently used first)',
    schema: z.strictObject({
      dir: z.string(),
      usage: count,
      capacity: count,
      entries: z.array(z.looseObject({ key: z.string(), size: count })),
    }),
  },
  'cache gc': {
    about: 'blobs evicted, bytes freed, usage after',
    schema: z.strictObject({ evicted: z.array(z.string()), freedBytes: count, usage: count }),
  },
  'cache clear': {
    about: 'blobs evicted and bytes freed',
    schema: z.strictObject({ evicted: z.array(z.string()), freedBytes: count }),
  },
  'trace ls': {
    about: 'the traces auto-trace stored on this host',
    schema: z.array(
      z.looseObject({
        manifestDigest: digest,
        image: z.string(),
        records: count,
        bytes: count,
        recordedAt: z.string(),
      }),
    ),
  },
  'trace push': {
    about: 'the image pushed with its stored trace as an acceleration layer',
    schema: z.strictObject(pushed),
  },
  'record-trace': {
    about: "the recording (reads, the container's exit code) and the image pushed with it",
    schema: z.strictObject({ ...pushed, exitCode: z.number().int() }),
  },
  'zfile verify': {
    about: 'a ZFile that passed every check (a failure is an error, exit 1)',
    schema: z.strictObject({ file: z.string(), ok: z.literal(true), blocks: count, size: count }),
  },
  run: {
    about: "with --timings: where the launch time went, one line on stderr (stdout is the container's)",
    schema: z.strictObject({
      timings: z.array(z.strictObject({ step: z.string(), ms: z.number() })),
      totalMs: z.number(),
    }),
  },
};

/** Parse `text` as `command`'s --json output; throws naming the command and what does not match. */
export function checkJsonOutput(command: string, text: string): unknown {
  const entry = JSON_OUTPUTS[command];
  if (!entry) throw new Error(`no JSON output schema for "dadi ${command}"`);
  const r = entry.schema.safeParse(JSON.parse(text));
  if (!r.success) throw new Error(`dadi ${command} --json does not match its schema: ${z.prettifyError(r.error)}`);
  return r.data;
}

/** docs/json-output.md: each command's schema as JSON Schema. */
export function jsonOutputDoc(): string {
  const parts = [
    '# `--json` output',
    '',
    'Every command that reports something takes `--json` and then prints one JSON document on stdout',
    "(`dadi run --timings --json`: one line on stderr, stdout being the container's). Below, each",
    "command's document as JSON Schema. Generated from `src/cli/json-output.ts` by",
    '`node --import tsx scripts/json-output-doc.ts`; the tests check real outputs against these schemas.',
    'Counts and sizes are integers (bytes); objects marked `additionalProperties: false` get no new key',
    'without a change here.',
    '',
  ];
  for (const [command, { about, schema }] of Object.entries(JSON_OUTPUTS)) {
    const js = z.toJSONSchema(schema, { unrepresentable: 'any' });
    delete (js as { $schema?: string }).$schema;
    parts.push(`## dadi ${command}`, '', `${about[0]!.toUpperCase()}${about.slice(1)}.`, '', '```json');
    parts.push(JSON.stringify(js, null, 2), '```', '');
  }
  return parts.join('\n');
}
