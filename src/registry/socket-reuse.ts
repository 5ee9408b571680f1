// Reusing a keep-alive connection for the request that follows a response at once. undici's Pool
// (pipelining 1) takes a connection whose response has ended back only one event-loop turn later
// (client-h1.js: setImmediate(resume), so that a server closing it regardless is noticed first);
// a request dispatched before then goes to another connection, a new one when none is idle. A
// pull's dependent requests come just so — the config right after the manifest, a layer's index
// right after its header — and each opened a connection: a TCP (and TLS) handshake, a round trip
// more on a distant registry, and in the bench's proxy 8 connections for 15 requests of a start.

/** Per origin, whether a response ended in this turn of the event loop, and when its connection is free. */
export class SocketReuse {
  private readonly settling = new Map<string, Promise<void>>();

  /** A response on `origin` has ended: its connection is free once undici's resume has run. */
  ended(origin: string): void {
    if (this.settling.has(origin)) return;
    // undici queues its resume after this (the handler hears of the end first): two turns of the
    // check phase put this after it. Nothing waits when no request follows within them.
    this.settling.set(
      origin,
      new Promise((resolve) =>
        setImmediate(() =>
          setImmediate(() => {
            this.settling.delete(origin);
            resolve();
          }),
        ),
      ),
    );
  }

  /** Resolves once a connection of `origin` freed just now can take a request; undefined when none was. */
  ready(origin: string): Promise<void> | undefined {
    return this.settling.get(origin);
  }
}
