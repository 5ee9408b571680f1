// Counting the response body bytes a registry sent, as an undici interceptor: it sees every body
// chunk as it arrives (chunked encoding already decoded), including bodies a handler dumps or
// drops, so the count is what the registry served — the figure a counting proxy in front of the
// registry measures (the cold-start benchmark's registry bytes), whoever read the body.

import type { Dispatcher } from 'undici';

/** An interceptor adding each response body chunk's length to `count`, and calling `ended` as a response ends. */
export function countBodyBytes(
  count: (bytes: number) => void,
  ended?: () => void,
): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => dispatch(opts, new BodyByteCounter(handler, count, ended));
}

/** Passes every event on to `inner` (compose hands interceptors handlers of this shape). */
class BodyByteCounter implements Dispatcher.DispatchHandler {
  constructor(
    private readonly inner: Dispatcher.DispatchHandler,
    private readonly count: (bytes: number) => void,
    private readonly ended?: () => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.inner.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>[2],
    socket: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>[3],
  ): void {
    this.inner.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2],
    statusMessage?: string,
  ): void {
    this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.count(chunk.length);
    this.inner.onResponseData?.(controller, chunk);
  }

  onResponseEnd(
    controller: Dispatcher.DispatchController,
    trailers: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseEnd']>>[1],
  ): void {
    this.ended?.();
    this.inner.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.inner.onResponseError?.(controller, error);
  }
}
