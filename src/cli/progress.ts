// Progress bars for long commands (convert, pull, prefetch, record-trace), drawn by cli-progress on
// stderr — only when stderr is a terminal: piped or redirected output gets no bars (and commands
// keep their plain lines there), so logs and scripts never see cursor movements.

import type { MultiBar, SingleBar } from 'cli-progress';
import { formatSize } from '../util/size.js';

export interface ProgressBar {
  /** Set the done amount (and optionally the total and a short status after the figures). */
  update(value: number, opts?: { total?: number; status?: string }): void;
}

export interface Progress {
  /** A new bar; `bytes` shows amounts as sizes (KiB, MiB…) instead of counts. */
  bar(label: string, total: number, opts?: { bytes?: boolean; status?: string }): ProgressBar;
  /** A line printed above the bars. */
  log(line: string): void;
  /** Draw the final state and give the terminal back. */
  stop(): void;
}

/** Bars on `stream` when it is a terminal (and TERM is not dumb); otherwise undefined. */
export async function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Promise<Progress | undefined> {
  if (!stream.isTTY || process.env.TERM === 'dumb') return undefined;
  const cliProgress = (await import('cli-progress')).default;
  const multi: MultiBar = new cliProgress.MultiBar(
    {
      stream,
      format: '{label} |{bar}| {percentage}% {done}/{all} {status}',
      barsize: 30,
      // The cursor stays visible: a Ctrl-C must not leave the terminal without one.
      hideCursor: false,
      autopadding: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let width = 0;
  const bars: Array<{ bar: SingleBar; label: string }> = [];
  const pending: string[] = [];
  return {
    bar(label, total, opts = {}) {
      const show = (n: number) => (opts.bytes ? formatSize(n) : String(n));
      width = Math.max(width, label.length);
      let all = total;
      const bar = multi.create(total, 0, { label, done: show(0), all: show(total), status: opts.status ?? '' });
      bars.push({ bar, label });
      for (const l of pending.splice(0)) multi.log(l);
      // Labels padded to the longest so the bars line up.
      for (const b of bars) b.bar.update({ label: b.label.padEnd(width) });
      return {
        update(value, u = {}) {
          if (u.total !== undefined && u.total !== all) {
            all = u.total;
            bar.setTotal(all);
          }
          const payload: Record<string, string> = { done: show(value), all: show(all) };
          if (u.status !== undefined) payload.status = u.status;
          bar.update(value, payload);
        },
      };
    },
    log(line) {
      // Before the first bar the multibar draws nothing, not even its log: keep the lines until then.
      if (bars.length === 0) pending.push(`${line}\n`);
      else multi.log(`${line}\n`);
    },
    stop() {
      // Lines logged since the last redraw are flushed by a redraw.
      if (bars.length > 0) multi.update();
      else for (const l of pending.splice(0)) stream.write(l);
      multi.stop();
    },
  };
}
