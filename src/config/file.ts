// Which config file a command reads: --config, else $DADI_CONFIG, else /etc/dadi/config.yaml when it
// exists. Its own module, free of the YAML and schema code, so light clients can look for the file
// without loading them (image/cache-dir.ts).

export const DEFAULT_CONFIG_FILE = '/etc/dadi/config.yaml';

/** snapshotter.address's default (here, so that `dadi pull` finds it without the schema). */
export const DEFAULT_SNAPSHOTTER_ADDRESS = '/run/dadi-snapshotter/dadi.sock';

export interface LoadConfigOptions {
  /** The --config flag: this file must exist. */
  file?: string;
  /** Environment to read (default process.env): $DADI_CONFIG and the per-key overrides. */
  env?: NodeJS.ProcessEnv;
}

/** Which file to read: --config, else $DADI_CONFIG, else the default path (only if it exists). */
export function configFileOf(o: LoadConfigOptions = {}): { path: string; required: boolean } {
  const env = o.env ?? process.env;
  if (o.file) return { path: o.file, required: true };
  if (env.DADI_CONFIG) return { path: env.DADI_CONFIG, required: true };
  return { path: DEFAULT_CONFIG_FILE, required: false };
}
