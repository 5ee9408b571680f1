// The daemon's policy for errors nobody handled. One daemon process serves every mounted rootfs
// on the host, so Node's default (exit at once) would take all of them down for one stray error:
//
// - an unhandled promise rejection is a bug in some piece of work (a background fetch, a push),
//   not a sign that the process state is broken: it is logged with its stack and counted by kind
//   (errors{kind="unhandled_rejection"} in the metrics), and the daemon keeps serving;
// - an uncaught exception unwound a synchronous call stack halfway: state may be inconsistent. It
//   is logged, the exit code is set to 1, and the daemon drains (stops taking work, lets requests
//   in flight finish, unmounts) and ends with status 1; a second one, or a drain that outlives its
//   deadline, exits at once.
//
//   const off = installFaultPolicy({ log, count, drain: () => daemon.stop(), drainDeadlineMs });
//   … off();   // when the daemon stopped

import { DadiError } from '../errors.js';

export interface FaultPolicyOptions {
  /** Where the error and what happens next are logged (level error). */
  log: (message: string) => void;
  /** Count one fault: `kind` is 'unhandled_rejection' or 'uncaught_exception', `code` the error's. */
  count: (kind: FaultKind, code: string) => void;
  /** Stop taking work, finish what runs, shut down; resolves when done. Called again: at once. */
  drain: () => Promise<void>;
  /** How long the drain may take before the process exits anyway. */
  drainDeadlineMs: number;
  /** The process (tests pass an emitter and a fake exit). */
  proc?: FaultSource;
  exit?: (code: number) => void;
}

export type FaultKind = 'unhandled_rejection' | 'uncaught_exception';

/** What the policy needs of the process. */
export interface FaultSource {
  on(event: 'unhandledRejection' | 'uncaughtException', listener: (e: unknown) => void): unknown;
  off(event: 'unhandledRejection' | 'uncaughtException', listener: (e: unknown) => void): unknown;
  exitCode?: number | string | undefined;
}

/** The error's DadiError code, else its class name (what the metric's `code` label says). */
export function faultCode(e: unknown): string {
  if (e instanceof DadiError) return e.code;
  if (e instanceof Error) return e.name || 'Error';
  return typeof e;
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

/** Install the policy on the process; returns what removes it. */
export function installFaultPolicy(o: FaultPolicyOptions): () => void {
  const proc = o.proc ?? process;
  const exit = o.exit ?? ((code: number) => process.exit(code));
  let draining = false;
  let deadline: NodeJS.Timeout | undefined;

  const onRejection = (reason: unknown) => {
    o.count('unhandled_rejection', faultCode(reason));
    o.log(`unhandled promise rejection (logged and counted; still serving): ${describe(reason)}`);
  };
  const onException = (error: unknown) => {
    o.count('uncaught_exception', faultCode(error));
    proc.exitCode = 1;
    if (draining) {
      o.log(`uncaught exception while draining: exiting now: ${describe(error)}`);
      exit(1);
      return;
    }
    draining = true;
    o.log(`uncaught exception: draining, then exiting with status 1: ${describe(error)}`);
    deadline = setTimeout(() => {
      o.log(`drain after the uncaught exception took over ${o.drainDeadlineMs} ms: exiting now`);
      exit(1);
    }, o.drainDeadlineMs);
    // Drained: the process ends the ordinary way (logs flushed) with status 1; the deadline,
    // no longer holding it alive, still ends it should some handle linger.
    o.drain().then(
      () => deadline?.unref(),
      (e: unknown) => {
        o.log(`drain after the uncaught exception failed: ${describe(e)}`);
        exit(1);
      },
    );
  };
  proc.on('unhandledRejection', onRejection);
  proc.on('uncaughtException', onException);
  // The deadline of a drain under way stays: it is what ends a process some handle holds alive.
  return () => {
    proc.off('unhandledRejection', onRejection);
    proc.off('uncaughtException', onException);
  };
}
