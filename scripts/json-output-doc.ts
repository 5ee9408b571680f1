// Write docs/json-output.md from the --json schemas in src/cli/json-output.ts.
import { writeFile } from 'node:fs/promises';
import { jsonOutputDoc } from '../src/cli/json-output.js';

await writeFile(new URL('../docs/json-output.md', import.meta.url), jsonOutputDoc());
