// The simulator's agenda: events ordered by (time, insertion order), so two events at the same
// instant run in the order they were scheduled and every run is reproducible. Cancelling marks an
// event; the queue drops it when it reaches the front. Not the clock or the run loop (simulation.ts).

import { MinHeap } from './min-heap.js';

export interface SimEvent {
  readonly time: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export class EventQueue {
  private readonly heap = new MinHeap<SimEvent>((a, b) => a.time < b.time || (a.time === b.time && a.seq < b.seq));
  private nextSeq = 0;

  /** Events queued, cancelled ones not yet dropped included. */
  get size(): number {
    return this.heap.size;
  }

  push(time: number, fn: () => void): SimEvent {
    const e: SimEvent = { time, seq: this.nextSeq++, fn, cancelled: false };
    this.heap.push(e);
    return e;
  }

  /** The earliest event not cancelled, left in the queue; undefined when none is left. */
  peek(): SimEvent | undefined {
    while (this.heap.peek()?.cancelled) this.heap.pop();
    return this.heap.peek();
  }

  /** The earliest event not cancelled, removed from the queue; undefined when none is left. */
  pop(): SimEvent | undefined {
    return this.peek() === undefined ? undefined : this.heap.pop();
  }
}
