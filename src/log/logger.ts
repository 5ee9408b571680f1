// Structured logs of the long-running commands (daemon, snapshotter): pino JSON lines, one per
// event, with a level, time, pid and component, to a file or stderr (logConfig), every line through
// redact.ts first. On a terminal stderr gets one readable line per event instead of JSON.
// SIGHUP calls reconfigure(): a new level applies at once, a new logPath (or the same one, moved
// away by logrotate) is reopened. Not what the CLI prints for users (that stays plain stderr).
//
// @example
//   const log = RootLogger.create({ level: 'info', path: '' }, 'daemon');
//   log.info('mounted', { device: 'd-1f2e', target: '/mnt' });
//   log.child('snapshotter').warn('slow');

import { pino } from 'pino';
import type { LogLevel } from '../config/schema.js';
import { redactText, redactValue } from './redact.js';

export type LogFields = Record<string, unknown>;

export interface Logger {
  trace(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** The same log, each line tagged with `component`. */
  child(component: string): Logger;
  /** Whether a line at `level` would be written (skip building costly fields otherwise). */
  enabled(level: Exclude<LogLevel, 'silent'>): boolean;
}

export interface LogSettings {
  level: LogLevel;
  /** File to append to; empty: stderr. */
  path: string;
}

interface Destination {
  write(line: string): void;
  close(): void;
}

type Method = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** The process's log: owns the destination; children share it. */
export class RootLogger implements Logger {
  private current: { pino: pino.Logger; dest: Destination; settings: LogSettings };

  private constructor(
    settings: LogSettings,
    private readonly component: string,
    private readonly stderr: NodeJS.WriteStream,
  ) {
    this.current = this.open(settings);
  }

  static create(settings: LogSettings, component: string, stderr: NodeJS.WriteStream = process.stderr): RootLogger {
    return new RootLogger(settings, component, stderr);
  }

  get settings(): LogSettings {
    return { ...this.current.settings };
  }

  /** Apply new settings: the level at once; the destination reopened (also when unchanged: logrotate). */
  reconfigure(settings: LogSettings): void {
    const old = this.current;
    this.current = this.open(settings);
    old.dest.close();
  }

  /** Close the destination (file logs); later lines go nowhere. */
  close(): void {
    this.current.dest.close();
  }

  enabled(level: Exclude<LogLevel, 'silent'>): boolean {
    return this.current.pino.isLevelEnabled(level);
  }

  trace(msg: string, fields?: LogFields): void {
    this.emit('trace', this.component, msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.emit('debug', this.component, msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.emit('info', this.component, msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.emit('warn', this.component, msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.emit('error', this.component, msg, fields);
  }

  child(component: string): Logger {
    return this.named(`${this.component}/${component}`);
  }

  private named(component: string): Logger {
    const emit = (level: Method) => (msg: string, fields?: LogFields) => this.emit(level, component, msg, fields);
    return {
      trace: emit('trace'),
      debug: emit('debug'),
      info: emit('info'),
      warn: emit('warn'),
      error: emit('error'),
      child: (c) => this.named(`${component}/${c}`),
      enabled: (level) => this.enabled(level),
    };
  }

  private emit(level: Method, component: string, msg: string, fields?: LogFields): void {
    const p = this.current.pino;
    if (!p.isLevelEnabled(level)) return;
    const obj = fields ? (redactValue(fields) as LogFields) : {};
    p[level]({ component, ...obj }, redactText(msg));
  }

  private open(settings: LogSettings): RootLogger['current'] {
    const dest = settings.path ? fileDestination(settings.path) : stderrDestination(this.stderr);
    const logger = pino(
      {
        level: settings.level,
        base: { pid: process.pid },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      dest,
    );
    return { pino: logger, dest, settings: { ...settings } };
  }
}

function fileDestination(path: string): Destination {
  // Synchronous writes: a line logged just before exit (or a crash) is on disk.
  const d = pino.destination({ dest: path, append: true, mkdir: true, sync: true });
  return {
    write: (line) => d.write(line),
    close: () => d.end(),
  };
}

/** JSON lines on stderr, or (a terminal) `time LEVEL component: msg {fields}`. */
function stderrDestination(stderr: NodeJS.WriteStream): Destination {
  if (!stderr.isTTY) return { write: (line) => stderr.write(line), close: () => {} };
  return {
    write(line) {
      const { time, level, component, msg, pid: _pid, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
      stderr.write(
        `${String(time).slice(11, 23)} ${String(level).toUpperCase().padEnd(5)} ${component}: ${msg}${extra}\n`,
      );
    },
    close: () => {},
  };
}

/** A logger that drops everything (tests, library callers that pass none). */
export const silentLogger: Logger = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
  enabled: () => false,
};
