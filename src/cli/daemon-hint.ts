// What `dadi run` and `dadi mount` tell the daemon before the rest of the CLI has loaded: the
// image reference, so that the daemon opens its connections to the image's registry while this
// process starts (node, the bundle, commander: 35-45 ms here) instead of when the resolve request
// comes. A new daemon's first registry request otherwise waits for the TCP handshake (one round
// trip; two more with TLS) on the start's path. Best effort: nothing waits for it, and every
// failure is ignored (no daemon yet: the one the CLI starts connects when it resolves).
// Node built-ins only: this runs in dist/cli/start.cjs, before the command's bundle loads.

import { connect } from 'node:net';
import { statePaths } from '../runtime/state.js';

/** Options of `run` and `mount` that take a value (run.ts, trace-options.ts). */
const VALUED = new Set([
  '--name',
  '--entrypoint',
  '-u',
  '--user',
  '-w',
  '--workdir',
  '--state',
  '--platform',
  '--trace-workers',
]);
/** Options that take every value up to the next option (commander's variadic `-e, --env <K=V...>`). */
const VARIADIC = new Set(['-e', '--env']);

/**
 * The image reference and --state of a `run` or `mount` command line (argv after the program),
 * as commander would read them; undefined for other commands, help, or no reference.
 */
export function imageRefOf(args: readonly string[]): { ref: string; state?: string } | undefined {
  if (args[0] !== 'run' && args[0] !== 'mount') return undefined;
  let ref: string | undefined;
  let state: string | undefined;
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break;
    if (a === '--help' || a === '-h') return undefined;
    if (a === '--state') state = args[++i];
    else if (a.startsWith('--state=')) state = a.slice('--state='.length);
    else if (VALUED.has(a)) i++;
    else if (VARIADIC.has(a)) while (i + 1 < args.length && !args[i + 1]!.startsWith('-')) i++;
    else if (!a.startsWith('-')) ref ??= a;
  }
  return ref ? { ref, ...(state !== undefined ? { state } : {}) } : undefined;
}

/**
 * Send the daemon a `preconnect` for the image of this command line, if it names one (true: the
 * request leaves once the connection is up, at the event loop's next turn); never throws.
 */
export function hintDaemon(args: readonly string[]): boolean {
  try {
    const x = imageRefOf(args);
    if (!x) return false;
    const c = connect(statePaths(x.state).socket);
    c.on('error', () => {});
    // The answer only closes the connection; it never holds the process open.
    c.on('data', () => c.destroy());
    c.unref();
    c.write(`${JSON.stringify({ op: 'preconnect', ref: x.ref })}\n`);
    return true;
  } catch {
    // Only a head start: the resolve connects anyway.
    return false;
  }
}
