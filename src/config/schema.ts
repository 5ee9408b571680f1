// The schema of dadi's one config file (/etc/dadi/config.yaml): every key, its type, its default,
// the environment variable that overrides it and whether SIGHUP applies it — declared once, here.
// The loader (load.ts), the docs table (reference.ts → docs/operations.md) and the daemon's reload
// all read this. Not the file handling or the error wording: that is load.ts.
//
// Section and key names follow the reference's overlaybd.json where the meaning is the same
// (cacheConfig, logConfig, download, p2pConfig, prefetchConfig); docs/operations.md lists where
// ours differ and why.

import { z } from 'zod';
import { DEFAULT_FILE_READAHEAD } from '../prefetch/ext4-prefetch.js';
import { DEFAULT_LAYER_PULL } from '../prefetch/layer-pull-plan.js';
import { DEFAULT_REPLAY_WORKERS } from '../prefetch/trace-replay.js';
import { DEFAULT_HOSTS_DIR } from '../registry/hosts.js';
import { parseSize } from '../util/size.js';
import { DEFAULT_SNAPSHOTTER_ADDRESS } from './file.js';

/** What the docs and the environment overrides need to know about one key. */
export interface FieldMeta {
  /** One sentence for the reference table. */
  doc: string;
  /** The environment variable that overrides the file (stronger than the file, weaker than a flag). */
  env?: string;
  /** 'reload': SIGHUP applies it to a running daemon; 'restart': read once at start. */
  apply: 'reload' | 'restart';
  /** The default as the docs show it, when it is computed rather than a constant. */
  shownDefault?: string;
  /** How an environment value is read (default: by the key's type). */
  envKind?: 'boolean' | 'number' | 'size' | 'string' | 'list';
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** overlaybd's numeric logLevel (0 debug … 4 fatal), accepted for configs carried over from it. */
const OVERLAYBD_LOG_LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error', 'fatal'];

const leaf = <T extends z.ZodType>(schema: T, meta: FieldMeta) => schema.meta({ ...meta });

/** host:port (host a name, an IPv4 address or a [bracketed] IPv6 address). */
const hostPort = z
  .string()
  .regex(/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:9863')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port above 65535');

/** A byte count as a number or a size string ("1M", "256K"). */
const byteSize = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  try {
    return parseSize(v, 'size');
  } catch {
    ctx.addIssue({ code: 'custom', message: `cannot read ${JSON.stringify(v)} as a byte size (e.g. 1M, 262144)` });
    return z.NEVER;
  }
});

const powerOfTwoChunk = byteSize.refine(
  (n) => n >= 4096 && n <= 64 << 20 && (n & (n - 1)) === 0,
  'expected a power of two in 4 KiB–64 MiB',
);

const logLevel = z
  .union([z.enum(LOG_LEVELS), z.number().int().min(0).max(4)])
  .transform((v): LogLevel => (typeof v === 'number' ? OVERLAYBD_LOG_LEVELS[v]! : v));

// Every key of a section has a default (or is optional), so an absent section is an empty one.
const section = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape).prefault({} as z.input<z.ZodObject<T>>);

export const configSchema = z
  .strictObject({
    cacheConfig: section({
      cacheDir: leaf(z.string().min(1).optional(), {
        doc: 'Block cache directory (the daemon owns it while it runs).',
        env: 'DADI_CACHE_DIR',
        apply: 'restart',
        shownDefault: '`/var/cache/dadi/blocks` as root, else `~/.cache/dadi/blocks`',
      }),
      cacheSizeGB: leaf(z.number().positive().default(4), {
        doc: 'Block cache capacity in GiB; least recently used blobs go first beyond it.',
        env: 'DADI_CACHE_SIZE_GB',
        apply: 'restart',
      }),
    }),
    logConfig: section({
      logLevel: leaf(logLevel.default('info'), {
        doc: "Least severe level logged: trace, debug, info, warn, error, fatal, silent (or overlaybd's 0–4).",
        env: 'DADI_LOG_LEVEL',
        apply: 'reload',
        envKind: 'string',
      }),
      logPath: leaf(z.string().default(''), {
        doc: 'File the JSON log lines are appended to; empty: stderr (the journal under systemd).',
        env: 'DADI_LOG_PATH',
        apply: 'reload',
      }),
    }),
    download: section({
      enable: leaf(z.boolean().default(DEFAULT_LAYER_PULL.enabled), {
        doc: "Pull each mounted image's layers wholly into the cache in the background.",
        env: 'DADI_PULL',
        apply: 'reload',
      }),
      delay: leaf(z.number().min(0).default(DEFAULT_LAYER_PULL.delay), {
        doc: 'Seconds after a device opens before its pull starts.',
        env: 'DADI_PULL_DELAY',
        apply: 'reload',
      }),
      delayExtra: leaf(z.number().min(0).default(DEFAULT_LAYER_PULL.delayExtra), {
        doc: 'Up to this many more seconds, at random (spreads the hosts of a fleet).',
        env: 'DADI_PULL_DELAY_EXTRA',
        apply: 'reload',
      }),
      maxMBps: leaf(z.number().positive().default(DEFAULT_LAYER_PULL.maxMBps), {
        doc: "Upper bound on all pulls' registry bandwidth together, in MB/s (10^6 bytes/s).",
        env: 'DADI_PULL_MBPS',
        apply: 'reload',
      }),
      tryCnt: leaf(z.number().int().min(1).default(DEFAULT_LAYER_PULL.tries), {
        doc: 'Passes over a layer before its pull gives up.',
        env: 'DADI_PULL_TRIES',
        apply: 'reload',
      }),
      blockSize: leaf(powerOfTwoChunk.default(DEFAULT_LAYER_PULL.chunkSize), {
        doc: 'Bytes per range read of the pull (a power of two, 4 KiB–64 MiB; "1M" works).',
        env: 'DADI_PULL_CHUNK',
        apply: 'reload',
        envKind: 'size',
      }),
      concurrency: leaf(z.number().int().min(1).max(64).default(DEFAULT_LAYER_PULL.concurrency), {
        doc: 'Range reads of one pull in flight at once.',
        env: 'DADI_PULL_CONCURRENCY',
        apply: 'reload',
      }),
    }),
    prefetchConfig: section({
      concurrency: leaf(z.number().int().min(1).max(256).default(DEFAULT_REPLAY_WORKERS), {
        doc: 'Reads in flight when a trace is replayed (a request may ask for another count).',
        apply: 'reload',
      }),
      ext4Metadata: leaf(z.boolean().default(true), {
        doc: "Without a trace to replay: read a mounted image's ext4 metadata (inode tables, directories) in the background as it opens.",
        env: 'DADI_EXT4_PREFETCH',
        apply: 'reload',
      }),
      fileReadahead: leaf(z.union([z.literal(0), byteSize]).default(DEFAULT_FILE_READAHEAD), {
        doc: 'With ext4Metadata: when part of a file extent up to this size is read, read the rest at once (0: off; "2M" works).',
        env: 'DADI_FILE_READAHEAD',
        apply: 'reload',
        envKind: 'size',
      }),
    }),
    metrics: section({
      address: leaf(hostPort.optional(), {
        doc: 'host:port serving Prometheus metrics on /metrics; unset: no metrics endpoint. Use a loopback address unless scraped from elsewhere.',
        env: 'DADI_METRICS_ADDRESS',
        apply: 'restart',
        shownDefault: 'unset (off)',
      }),
    }),
    p2pConfig: section({
      enable: leaf(z.boolean().default(false), {
        doc: 'Fetch registry blobs through the P2P network (the agent inside the daemon).',
        env: 'DADI_P2P',
        apply: 'restart',
      }),
      address: leaf(hostPort.optional(), {
        doc: 'host:port the agent serves its children on; unset: the agent serves no one (a leaf).',
        apply: 'restart',
        shownDefault: 'unset',
      }),
      roots: leaf(z.array(z.url()).default([]), {
        doc: 'URLs of the P2P roots, tried in order (the root fetches from the registry once per chunk).',
        env: 'DADI_P2P_ROOTS',
        apply: 'restart',
        envKind: 'list',
      }),
      fanOut: leaf(z.number().int().min(1).max(256).default(4), {
        doc: 'Children a node takes in a blob tree before new hosts go below them.',
        apply: 'restart',
      }),
      chunkSize: leaf(powerOfTwoChunk.default(1 << 20), {
        doc: "Bytes per chunk moved between hosts and the P2P cache's refill unit (a power of two, 4 KiB–64 MiB); peers' chunks are checked by the image's digest list only when its chunk size is the same, else by ZFile CRCs.",
        apply: 'restart',
      }),
    }),
    daemon: section({
      stateDir: leaf(z.string().min(1).default('/run/dadi'), {
        doc: "The daemon's socket, pid file, devices and containers. Clients look here too only through $DADI_STATE.",
        env: 'DADI_STATE',
        apply: 'restart',
      }),
      readers: leaf(z.number().int().min(1).max(32).default(4), {
        doc: 'FUSE reader loops per device (each pins a libuv thread).',
        apply: 'restart',
      }),
      onStop: leaf(z.enum(['unmount', 'wait']).default('unmount'), {
        doc: 'On SIGTERM, after draining requests: unmount every device (stopping the containers on them), or wait until their users release them.',
        apply: 'reload',
      }),
      drainTimeout: leaf(z.number().min(0).default(30), {
        doc: 'Seconds SIGTERM waits for requests in flight before tearing down regardless.',
        apply: 'reload',
      }),
    }),
    registry: section({
      hostsDir: leaf(z.string().default(DEFAULT_HOSTS_DIR), {
        doc: "containerd's registry hosts folder (`<dir>/<host>/hosts.toml`: mirrors, server, ca, client, skip_verify, plain HTTP), honoured by the daemon's reads and the snapshotter's pulls (`dadi pull --containerd-address`); empty: none.",
        env: 'DADI_HOSTS_DIR',
        apply: 'restart',
        envKind: 'string',
      }),
    }),
    snapshotter: section({
      address: leaf(z.string().min(1).default(DEFAULT_SNAPSHOTTER_ADDRESS), {
        doc: "Unix socket containerd's proxy_plugins entry points at; `dadi pull --containerd-address` sends its pulls there too.",
        apply: 'restart',
      }),
      root: leaf(z.string().min(1).default('/var/lib/containerd/io.containerd.snapshotter.v1.dadi'), {
        doc: 'Snapshots and their metadata.',
        apply: 'restart',
      }),
      rwMode: leaf(z.enum(['overlayfs', 'block']).default('overlayfs'), {
        doc: "Containers' writes over DADI images: an overlayfs upper directory, or a writable block layer.",
        apply: 'restart',
      }),
    }),
  })
  .prefault({});

/** The whole configuration, every default filled in (cacheConfig.cacheDir may stay undefined: computed). */
export type DadiConfig = z.output<typeof configSchema>;

/** One key of the file: its dotted path, its schema (with its default) and what the docs need. */
export interface ConfigField {
  path: string;
  schema: z.ZodType;
  meta: FieldMeta;
  /** The constant default, or undefined when there is none or it is computed (meta.shownDefault). */
  default: unknown;
}

/** Every key of the schema, in declaration order. */
export function configFields(): ConfigField[] {
  const out: ConfigField[] = [];
  const walk = (schema: z.ZodType, path: string[]) => {
    const obj = unwrapSection(schema);
    if (obj) {
      for (const [k, v] of Object.entries(obj.shape)) walk(v as z.ZodType, [...path, k]);
      return;
    }
    const meta = schema.meta() as FieldMeta | undefined;
    if (!meta?.doc) throw new Error(`config key ${path.join('.')} has no doc`);
    out.push({ path: path.join('.'), schema, meta, default: defaultOf(schema) });
  };
  walk(configSchema, []);
  return out;
}

function unwrapSection(schema: z.ZodType): z.ZodObject | undefined {
  let s = schema;
  if (s instanceof z.ZodPrefault) s = s.unwrap() as z.ZodType;
  return s instanceof z.ZodObject ? s : undefined;
}

function defaultOf(schema: z.ZodType): unknown {
  if (!(schema instanceof z.ZodDefault)) return undefined;
  const d = schema.def.defaultValue;
  return typeof d === 'function' ? (d as () => unknown)() : d;
}
