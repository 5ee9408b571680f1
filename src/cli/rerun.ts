// Running the same command again in a new process, for what only a process's start can set up:
// bin/dadi moves $NODE_EXTRA_CA_CERTS aside for commands that open no TLS connection themselves
// (node reads that file only as it starts, 40 ms and more for a system bundle), and a command
// that then turns out to need TLS (`dadi pull` with no snapshotter to ask) runs again with it.

import { spawn } from 'node:child_process';
import { basename, dirname, join } from 'node:path';
import { exitCodeOf } from '../util/exit-code.js';

/**
 * The argv that starts this process's command again: a bundle run by dist/cli/start.cjs
 * (cli/cached-start.ts) is started through it; anything else as node was given it.
 */
export function commandArgv(argv: readonly string[] = process.argv, execArgv: readonly string[] = process.execArgv) {
  const [node, script, ...args] = argv;
  const bundle = /^(.+)\.bundle\.cjs$/.exec(basename(script!));
  const start = bundle ? [join(dirname(script!), 'start.cjs'), bundle[1]!] : [script!];
  return [node!, ...execArgv, ...start, ...args];
}

/** Run this command again with `env`, sharing stdio; its exit code (128 + n for signal n). */
export function rerun(env: NodeJS.ProcessEnv): Promise<number> {
  const [cmd, ...args] = commandArgv();
  return new Promise((res, rej) => {
    const child = spawn(cmd!, args, { stdio: 'inherit', env });
    child.once('error', rej);
    child.once('exit', (code, signal) => res(exitCodeOf(code, signal)));
  });
}
