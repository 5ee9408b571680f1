// `dadi pull --containerd-address`: a DADI image into containerd, its layers left in the registry
// for the dadi snapshotter (snapshotter/pull.ts does the work). The command's options only: the
// action (pull-action.ts) is loaded when it runs, or bundled with it (pull-entry.ts).

import type { Command } from 'commander';
import type { PullCliOptions } from './pull-action.js';

type Action = (ref: string, o: PullCliOptions) => Promise<void>;

export function registerPullCommand(
  program: Command,
  action: () => Promise<Action> = async () => (await import('./pull-action.js')).pullAction,
): void {
  program
    .command('pull')
    .description('pull a DADI image into containerd, layers left in the registry (for the dadi snapshotter)')
    .argument('<ref>', 'host[:port]/repo[:tag|@digest]')
    .requiredOption('--containerd-address <sock>', "containerd's socket")
    .option('-n, --namespace <ns>', 'containerd namespace', 'default')
    .option('--snapshotter <name>', "the dadi snapshotter's name in containerd's config", 'dadi')
    .option(
      '--hosts-dir <dir>',
      "containerd's registry hosts folder (<dir>/<host>/hosts.toml; default: registry.hostsDir of the config file)",
    )
    .option('--config <file>', 'config file (default: $DADI_CONFIG or /etc/dadi/config.yaml)')
    .option('--insecure', 'use plain HTTP for the registry')
    .option('--platform <os/arch>', 'platform to select from a multi-platform image (default: this machine)')
    .option('--json', 'print the result as JSON')
    .option('--timings', 'print where the time went (milliseconds per step) to stderr, or into the JSON')
    .action(async (ref: string, o: PullCliOptions) => (await action())(ref, o));
}
