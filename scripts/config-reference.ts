// Rewrite the config reference table in docs/operations.md from src/config/schema.ts.
import { readFile, writeFile } from 'node:fs/promises';
import { withReferenceTable } from '../src/config/reference.js';

const path = new URL('../docs/operations.md', import.meta.url);
await writeFile(path, withReferenceTable(await readFile(path, 'utf8')));
