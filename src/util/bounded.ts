// Run async work over a list with at most N jobs at once, keeping each result at its item's place,
// so a pipeline can await item i while items after it are already running.

/**
 * Run `fn` over `items` with at most `limit` at once; results are promises in item order, started
 * in item order.
 * @example const sizes = await Promise.all(bounded(urls, 4, (u) => fetchSize(u)));
 */
export function bounded<T, R>(items: readonly T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R>[] {
  let active = 0;
  const waiting: Array<() => void> = [];
  const acquire = async (): Promise<void> => {
    if (active < limit) {
      active++;
      return;
    }
    await new Promise<void>((r) => waiting.push(r));
  };
  // A finished job hands its slot straight to the next waiter, so `active` only drops when none waits.
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  return items.map(async (x, i) => {
    await acquire();
    try {
      return await fn(x, i);
    } finally {
      release();
    }
  });
}
