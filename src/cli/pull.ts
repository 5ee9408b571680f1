// `dadi pull --containerd-address`: a DADI image into containerd, its layers left in the registry
// for the dadi snapshotter (snapshotter/pull.ts does the work, in the snapshotter's process). The
// command's options only: the action (pull-remote.ts) is loaded when it runs, or bundled with it
// (pull-entry.ts).

import type { Command } from 'commander';
import type { PullRemoteOptions } from './pull-remote.js';

type Action = (ref: string, o: PullRemoteOptions) => Promise<unknown>;

export function registerPullCommand(
  program: Command,
  action: () => Promise<Action> = async () => (await import('./pull-remote.js')).pullRemoteAction,
): void {
  program
    .command('pull')
    .description('pull a DADI image into containerd, layers left in the registry (for the dadi snapshotter)')
    .argument('<ref>', 'host[:port]/repo[:tag|@digest]')
    .requiredOption('--containerd-address <sock>', "containerd's socket")
    .option('-n, --namespace <ns>', 'containerd namespace', 'default')
    .option('--snapshotter <name>', "the dadi snapshotter's name in containerd's config", 'dadi')
    .option(
      '--snapshotter-address <sock>',
      "the running dadi snapshotter's socket, which performs the pull (default: snapshotter.address of the config file; when nothing answers there, the pull runs in this process)",
    )
    .option(
      '--hosts-dir <dir>',
      "containerd's registry hosts folder (<dir>/<host>/hosts.toml; default: registry.hostsDir of the config file)",
    )
    .option('--config <file>', 'config file (default: $DADI_CONFIG or /etc/dadi/config.yaml)')
    .option('--insecure', 'use plain HTTP for the registry')
    .option('--platform <os/arch>', 'platform to select from a multi-platform image (default: this machine)')
    .option('--json', 'print the result as JSON')
    .option('--timings', 'print where the time went (milliseconds per step) to stderr, or into the JSON')
    .action(async (ref: string, o: PullRemoteOptions) => {
      await (await action())(ref, o);
    });
}
