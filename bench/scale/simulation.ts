// A discrete-event simulation: a simulated clock (seconds, from 0) and callbacks scheduled on it.
// Nothing here knows about networks or hosts; those models schedule their own events. Runs are
// bounded by an event budget so a model bug ends in an error, never a hang.
//
//   const sim = new Simulation();
//   sim.after(0.5, () => console.log(sim.now)); // 0.5
//   sim.run();

import { EventQueue, type SimEvent } from './event-queue.js';

/** A scheduled callback; `cancel()` keeps it from running. */
export interface Scheduled {
  cancel(): void;
}

export interface RunLimits {
  /** Stop before the first event later than this (simulated seconds). */
  until?: number;
  /** Throw when more events than this would run (default 50 million). */
  maxEvents?: number;
}

export class Simulation {
  private readonly queue = new EventQueue();
  private clock = 0;
  /** Events run so far. */
  events = 0;

  /** The simulated time in seconds. */
  get now(): number {
    return this.clock;
  }

  /** Run `fn` at simulated time `time` (not before now). */
  at(time: number, fn: () => void): Scheduled {
    if (!(time >= this.clock)) throw new Error(`simulation: event at ${time} s is before now (${this.clock} s)`);
    return handle(this.queue.push(time, fn));
  }

  /** Run `fn` `delay` seconds from now. */
  after(delay: number, fn: () => void): Scheduled {
    return this.at(this.clock + delay, fn);
  }

  /** Run events in time order until none is left (or a limit is reached); returns the final time. */
  run(limits: RunLimits = {}): number {
    const until = limits.until ?? Number.POSITIVE_INFINITY;
    const budget = this.events + (limits.maxEvents ?? 50_000_000);
    for (;;) {
      const next = this.queue.peek();
      if (next === undefined) return this.clock;
      if (next.time > until) {
        this.clock = until;
        return this.clock;
      }
      const e = this.queue.pop()!;
      if (++this.events > budget) {
        throw new Error(`simulation: more than ${limits.maxEvents ?? 50_000_000} events (at ${this.clock} s)`);
      }
      this.clock = e.time;
      e.fn();
    }
  }
}

function handle(e: SimEvent): Scheduled {
  return {
    cancel() {
      e.cancelled = true;
    },
  };
}
