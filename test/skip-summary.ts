// A vitest reporter that ends the run by saying how many tests were skipped and why (the `SKIP`
// lines test/require.ts prints), per test file. With CI set it fails the run on any skipped or
// todo test, including ones skipped without going through requireOrSkip.

import { relative } from 'node:path';
import type { UserConsoleLog } from 'vitest';
import type { Reporter, TestModule, Vitest } from 'vitest/node';
import { inCI, SKIP_PREFIX } from './require.js';

export default class SkipSummary implements Reporter {
  private vitest!: Vitest;
  /** Skip reasons by the id of the task (or file) that printed them. */
  private readonly reasons = new Map<string, Set<string>>();
  /** The summary, printed in onFinished: vitest calls that after onTestRunEnd, and the default
   * reporter prints its own summary there, so ours comes last. */
  private summary: (() => void) | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onUserConsoleLog(log: UserConsoleLog): void {
    for (const line of log.content.split('\n')) {
      if (!line.startsWith(SKIP_PREFIX)) continue;
      const key = log.taskId ?? '';
      const set = this.reasons.get(key) ?? new Set<string>();
      set.add(line.slice(SKIP_PREFIX.length));
      this.reasons.set(key, set);
    }
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const lines: string[] = [];
    let total = 0;
    for (const m of modules) {
      const ids = new Set([m.id]);
      let skipped = 0;
      for (const t of m.children.allTests()) {
        ids.add(t.id);
        if (t.result().state === 'skipped') skipped++;
      }
      for (const s of m.children.allSuites()) ids.add(s.id);
      if (skipped === 0) continue;
      total += skipped;
      const why = [...ids].flatMap((id) => [...(this.reasons.get(id) ?? [])]);
      const file = relative(this.vitest.config.root, m.moduleId);
      lines.push(`  ${file}: ${skipped} skipped — ${why.length ? [...new Set(why)].join('; ') : 'no reason given'}`);
    }
    if (total === 0) return;
    if (inCI()) process.exitCode = 1;
    const log = this.vitest.logger;
    this.summary = inCI()
      ? () => log.error(`\n${total} tests skipped, but CI is set: every test must run.\n${lines.join('\n')}\n`)
      : () => log.log(`\n${total} tests skipped (CI=true would fail them):\n${lines.join('\n')}\n`);
  }

  onFinished(): void {
    this.summary?.();
    this.summary = undefined;
  }
}
