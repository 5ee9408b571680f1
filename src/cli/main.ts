// The `dadi` command: parses arguments and dispatches to one file per command group.
// Thin by design: no logic here beyond printing results and mapping errors to exit codes.

import { Command, CommanderError } from 'commander';
import { DadiError } from '../errors.js';
import { registerBrowseCommands } from './browse.js';
import { registerCacheCommands } from './cache.js';
import { registerConvertCommands } from './convert.js';
import { registerImageCommands } from './image.js';
import { registerLayerCommands } from './layer.js';
import { registerNbdCommands } from './nbd.js';
import { registerRegistryCommands } from './registry.js';
import { registerRunCommands } from './run.js';
import { registerZfileCommands } from './zfile.js';

export function buildProgram(): Command {
  const program = new Command('dadi')
    .description('Block-level container images (DADI, overlaybd-compatible): layers, ZFile, registries')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerLayerCommands(program);
  registerZfileCommands(program);
  registerImageCommands(program);
  registerRegistryCommands(program);
  registerCacheCommands(program);
  registerNbdCommands(program);
  registerRunCommands(program);
  registerConvertCommands(program);
  registerBrowseCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
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
    console.error(`dadi: ${e.message}`);
    if (process.env.DADI_DEBUG) console.error(e.stack);
    return 1;
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code && err.message) {
    console.error(`dadi: ${err.message}`);
  } else {
    console.error(`dadi: internal error: ${String(err?.stack ?? e)}`);
  }
  return 2;
}
