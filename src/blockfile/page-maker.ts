// Fresh memory, faulted in on another core. The first write to each 4 KiB of a new allocation is a
// page fault; on the 2-vCPU VM the 220 MB of the Debian base layer's scratch pages cost ~0.85 s of
// CPU that way (user + sys; filling the same pages once faulted: ~0.02 s), on the thread that
// applies the layer. A worker thread allocates pages as SharedArrayBuffers and touches every 4 KiB
// of them ahead of need, so those faults run beside the apply instead of inside it.
//
// The maker never makes anyone wait: `take` hands out a ready page or nothing (then the caller
// allocates as before). It asks for more the more pages are taken (2, 4, … up to `ahead`), so a
// small layer wastes little of the worker's time.

import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';

/** The worker: for each message n on its port, make n pages of `size` bytes, touch them, post each. */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { size, port } = workerData;
port.on('message', (n) => {
  for (let i = 0; i < n; i++) {
    const page = new SharedArrayBuffer(size);
    const bytes = new Uint8Array(page);
    for (let o = 0; o < size; o += 4096) bytes[o] = 0;
    port.postMessage(page);
  }
});
`;

export class PageMaker {
  private worker: Worker | undefined;
  /** Our end of the worker's channel, read synchronously: the apply that takes pages seldom yields. */
  private port: MessagePort | undefined;
  private readonly ready: Uint8Array[] = [];
  /** Pages asked of the worker and not yet received. */
  private pending = 0;
  /** Pages handed out (made here or by the caller) so far. */
  private taken = 0;
  private broken = false;
  /** Pages the worker delivered that were taken (for measurements and tests). */
  prefaulted = 0;

  /**
   * Pages of `size` bytes, at most `ahead` of them made before they are asked for, and no more
   * than `max` in all.
   */
  constructor(
    private readonly size: number,
    private readonly ahead: number,
    private readonly max: number,
  ) {}

  /** A fresh zeroed page already faulted in, or undefined when none is ready (allocate one yourself). */
  take(): Uint8Array | undefined {
    this.taken++;
    this.receive();
    const page = this.ready.shift();
    if (page) this.prefaulted++;
    this.askMore();
    return page;
  }

  /** Stop the worker; pages not taken are dropped. */
  async close(): Promise<void> {
    this.broken = true;
    this.ready.length = 0;
    const w = this.worker;
    this.worker = undefined;
    this.port?.close();
    this.port = undefined;
    await w?.terminate();
  }

  /** Pages the worker has posted so far. */
  private receive(): void {
    for (let m = this.port && receiveMessageOnPort(this.port); m; m = this.port && receiveMessageOnPort(this.port)) {
      this.pending--;
      this.ready.push(new Uint8Array(m.message as SharedArrayBuffer));
    }
  }

  private askMore(): void {
    if (this.broken) return;
    // The first page costs no worker: a layer that needs one page never starts it. Then twice as
    // many ahead with each page taken, up to `ahead`: a small layer wastes little of the worker's
    // time, a big one soon has pages enough ready to write at memory speed.
    const ramp = this.taken < 2 ? 0 : 2 ** Math.min(this.taken - 1, 16);
    const want = Math.min(this.ahead, ramp, this.max - this.taken) - this.ready.length - this.pending;
    if (want <= 0) return;
    if (!this.worker) this.start();
    if (!this.port) return;
    this.pending += want;
    this.port.postMessage(want);
  }

  private start(): void {
    try {
      const { port1, port2 } = new MessageChannel();
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        name: 'dadi-pages',
        workerData: { size: this.size, port: port2 },
        transferList: [port2],
      });
      w.unref(); // never what keeps the process alive
      // A worker that fails only means pages are made by the caller again.
      w.on('error', () => {
        this.broken = true;
      });
      this.worker = w;
      port1.unref();
      this.port = port1;
    } catch {
      this.broken = true;
    }
  }
}
