// dadi's config file: which file (file.ts), the schema of every key (schema.ts), loading and
// validating it (load.ts),
// its reference table for the docs (reference.ts), what sections mean to components (components.ts).

export { changedKeys, layerPullConfigOf } from './components.js';
export { configFileOf, DEFAULT_CONFIG_FILE, type LoadConfigOptions } from './file.js';
export { type LoadedConfig, loadConfig, parseConfig } from './load.js';
export { type ConfigField, configFields, configSchema, type DadiConfig, LOG_LEVELS, type LogLevel } from './schema.js';
