// The `dadi` command: parses arguments and dispatches to one file per command group.
// Thin by design: no logic here beyond printing results and mapping errors to exit codes.

import { Command, CommanderError } from 'commander';
import { DadiError } from '../errors.js';
import { terminalSafe } from '../util/quote.js';

type Register = (program: Command) => void;

/**
 * Command groups, each in its own module, loaded only when needed: starting the CLI should not
 * load the registry client, the native codecs and the runtime for a command that uses none of them
 * (`dadi run`'s time to first output counts every module it loads).
 */
const GROUPS: Array<{ commands: string[]; load: () => Promise<Register> }> = [
  { commands: ['layer'], load: async () => (await import('./layer.js')).registerLayerCommands },
  { commands: ['zfile'], load: async () => (await import('./zfile.js')).registerZfileCommands },
  { commands: ['image'], load: async () => (await import('./image.js')).registerImageCommands },
  {
    commands: ['login', 'logout', 'inspect', 'blob'],
    load: async () => (await import('./registry.js')).registerRegistryCommands,
  },
  { commands: ['cache'], load: async () => (await import('./cache.js')).registerCacheCommands },
  { commands: ['serve-nbd'], load: async () => (await import('./nbd.js')).registerNbdCommands },
  {
    commands: ['daemon', 'mount', 'umount', 'ps', 'run', 'commit', 'rm'],
    load: async () => (await import('./run.js')).registerRunCommands,
  },
  { commands: ['status'], load: async () => (await import('./status.js')).registerStatusCommand },
  { commands: ['record-trace', 'trace'], load: async () => (await import('./trace.js')).registerTraceCommands },
  { commands: ['convert', 'digests'], load: async () => (await import('./convert.js')).registerConvertCommands },
  { commands: ['snapshotter'], load: async () => (await import('./snapshotter.js')).registerSnapshotterCommand },
  { commands: ['pull'], load: async () => (await import('./pull.js')).registerPullCommand },
  { commands: ['p2p'], load: async () => (await import('./p2p.js')).registerP2PCommands },
  { commands: ['ls', 'cat', 'stat'], load: async () => (await import('./browse.js')).registerBrowseCommands },
];

/**
 * Work a command starts before its group's modules load: `convert` starts its worker threads, so
 * that they load beside the converter's modules (convert/prestart.ts). Not for `--help`.
 */
const PRESTART = new Map<string, () => Promise<void>>([
  ['convert', async () => (await import('../convert/prestart.js')).prestartConversion()],
]);

/** Whether `argv` runs `command` (its first word) for real, not just asking for help. */
export function prestartWanted(argv: readonly string[], command: string): boolean {
  const help = argv.includes('--help') || argv.includes('-h');
  return !help && argv.find((a) => !a.startsWith('-')) === command;
}

/** The program with no command yet. */
export function newProgram(): Command {
  return new Command('dadi')
    .description('Block-level container images (DADI, overlaybd-compatible): layers, ZFile, registries')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
}

/** Build the program with the groups `argv` needs (all of them for help or an unknown command). */
export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = newProgram();
  const first = argv.find((a) => !a.startsWith('-'));
  const wanted = GROUPS.filter((g) => first !== undefined && g.commands.includes(first));
  const versionOnly = argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V');
  if (first !== undefined && prestartWanted(argv, first)) await PRESTART.get(first)?.();
  if (!versionOnly) for (const g of wanted.length > 0 ? wanted : GROUPS) (await g.load())(program);
  return program;
}

/** Run `argv` on the program `build` makes (default: the whole CLI), mapping errors to the exit code. */
export async function main(
  argv: string[],
  build: (argv: string[]) => Command | Promise<Command> = buildProgram,
): Promise<void> {
  try {
    const program = await build(argv);
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    process.exitCode = reportError(e);
  }
}

/** Print an error the way users should see it; returns the exit code. */
export function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    // Commander already printed usage/help; exit 0 for --help/--version.
    return e.exitCode;
  }
  if (e instanceof DadiError) {
    console.error(`dadi: ${terminalSafe(e.message)}`);
    if (process.env.DADI_DEBUG) console.error(e.stack);
    return 1;
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code && err.message) {
    console.error(`dadi: ${terminalSafe(err.message)}`);
  } else {
    console.error(`dadi: internal error: ${String(err?.stack ?? e)}`);
  }
  return 2;
}
