// What `dadi pull --containerd-address` tells the snapshotter before the rest of the CLI has loaded:
// the request it is about to send (PullAhead, snapshotter/pull-wire.ts), so that the snapshotter
// resolves the image (its manifest GET) while this process loads its bundle and reads its options
// (~8 ms of a 30 ms start) instead of after. Only for command lines whose request is plain to read
// here: every option given as pull.ts defines it, and the snapshotter's socket known without
// loading the config (--snapshotter-address, or a config file that does not set it). Best effort:
// nothing waits for it and every failure is ignored; the pull's own request decides.
// Node built-ins only (and what they share with the CLI): this runs in dist/cli/start.cjs.

import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { configFileOf, DEFAULT_SNAPSHOTTER_ADDRESS } from '../config/file.js';
import { type PullAhead, type PullRequest, pullSocketOf } from '../snapshotter/pull-wire.js';

/** pull.ts's options with a value, by flag, and the request field each sets. */
const VALUED: Record<string, keyof PullRequest | 'snapshotterAddress'> = {
  '--containerd-address': 'containerdAddress',
  '-n': 'namespace',
  '--namespace': 'namespace',
  '--snapshotter': 'snapshotter',
  '--snapshotter-address': 'snapshotterAddress',
  '--hosts-dir': 'hostsDir',
  '--platform': 'platform',
};
/** pull.ts's flags without a value that leave the request as it is. */
const OUTPUT_FLAGS = new Set(['--json', '--timings']);

/**
 * The snapshotter's socket and the request of a `pull` command line (argv after the program), as
 * pull-remote.ts would send it; undefined when the line is not one to read here (another command,
 * help, --config, an option this does not know, no --containerd-address or reference).
 */
export function pullAheadOf(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): { address: string; request: PullRequest } | undefined {
  if (args[0] !== 'pull') return undefined;
  const v: Partial<Record<keyof PullRequest | 'snapshotterAddress', string>> = {};
  let insecure = false;
  let ref: string | undefined;
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    if (Object.hasOwn(VALUED, flag)) {
      const value = eq > 0 ? a.slice(eq + 1) : args[++i];
      if (value === undefined) return undefined;
      v[VALUED[flag]!] = value;
    } else if (a === '--insecure') insecure = true;
    else if (OUTPUT_FLAGS.has(a)) continue;
    else if (a.startsWith('-'))
      return undefined; // --help, --config, or one not known here
    else if (ref === undefined) ref = a;
    else return undefined; // commander refuses a second argument
  }
  if (!ref || !v.containerdAddress) return undefined;
  const address = v.snapshotterAddress ?? defaultAddress(env);
  if (address === undefined) return undefined;
  const request: PullRequest = {
    ref,
    containerdAddress: v.containerdAddress,
    namespace: v.namespace ?? 'default',
    snapshotter: v.snapshotter ?? 'dadi',
    ...(v.hostsDir !== undefined ? { hostsDir: v.hostsDir } : {}),
    ...(insecure ? { insecure: true } : {}),
    ...(v.platform !== undefined ? { platform: v.platform } : {}),
  };
  return { address, request };
}

/**
 * The snapshotter's socket when no --snapshotter-address is given: the default, unless a config file
 * may name another (its `snapshotter` section is the loader's to read: pull-remote.ts; a file that
 * never mentions the key leaves the default). Undefined when unsure.
 */
function defaultAddress(env: NodeJS.ProcessEnv): string | undefined {
  const f = configFileOf({ env });
  let text: string;
  try {
    text = readFileSync(f.path, 'utf8');
  } catch {
    // No default file: the default address. A named file that cannot be read: the loader reports it.
    return f.required ? undefined : DEFAULT_SNAPSHOTTER_ADDRESS;
  }
  return SNAPSHOTTER_KEY.test(text) ? undefined : DEFAULT_SNAPSHOTTER_ADDRESS;
}

/** A `snapshotter` key anywhere in a YAML (or JSON) config file, in block or flow style. */
const SNAPSHOTTER_KEY = /(^|[\s{,])["']?snapshotter["']?\s*:/m;

/**
 * Send the snapshotter the PullAhead of this command line, if it is one to read here (true: the
 * message leaves once the connection is up, at the event loop's next turn); never throws.
 */
export function hintSnapshotter(args: readonly string[]): boolean {
  try {
    const x = pullAheadOf(args);
    if (!x) return false;
    const c = connect(pullSocketOf(x.address));
    c.on('error', () => {});
    // The answer only closes the connection; it never holds the process open.
    c.on('data', () => c.destroy());
    c.unref();
    const hint: PullAhead = { ahead: x.request };
    c.write(`${JSON.stringify(hint)}\n`);
    return true;
  } catch {
    // Only a head start: the pull's own request resolves anyway.
    return false;
  }
}
