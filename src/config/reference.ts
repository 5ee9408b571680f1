// The config reference as a Markdown table, generated from the schema so the docs cannot drift:
// docs/operations.md holds it between two markers and a test compares them
// (`node --import tsx scripts/config-reference.ts` rewrites it).

import { configFields } from './schema.js';

export const REFERENCE_BEGIN = '<!-- config-reference:begin (generated from src/config/schema.ts) -->';
export const REFERENCE_END = '<!-- config-reference:end -->';

/** Every key: its default, its environment override, whether SIGHUP applies it, what it does. */
export function configReferenceTable(): string {
  const rows = configFields().map((f) => {
    const shown = f.meta.shownDefault ?? (f.default === undefined ? 'unset' : `\`${JSON.stringify(f.default)}\``);
    const env = f.meta.env ? `\`${f.meta.env}\`` : '';
    return `| \`${f.path}\` | ${shown} | ${env} | ${f.meta.apply} | ${f.meta.doc} |`;
  });
  return ['| key | default | environment | on SIGHUP | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}

/** `doc` with the text between the markers replaced by the current table. */
export function withReferenceTable(doc: string): string {
  const start = doc.indexOf(REFERENCE_BEGIN);
  const end = doc.indexOf(REFERENCE_END);
  if (start < 0 || end < start) throw new Error('the config reference markers are missing');
  return `${doc.slice(0, start + REFERENCE_BEGIN.length)}\n${configReferenceTable()}\n${doc.slice(end)}`;
}
