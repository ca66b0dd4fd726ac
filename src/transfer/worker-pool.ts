/**
 * runWorkers: N async workers pulling from a shared source until it is exhausted.
 *
 * Contract:
 * - `next()` is called by one worker at a time (serialised), so a source that must hand out
 *   items in ascending order (a merge with a paged listing) can be a plain async function.
 *   It returns undefined when there is nothing left.
 * - The first error (from `next` or `work`) aborts `signal`, stops every worker from taking new
 *   items, waits for the items already running, and rejects with that first error.
 * - An external `signal` aborting stops the pool the same way (rejecting with its reason).
 */
import { setMaxListeners } from 'node:events';

export interface PoolOptions<T> {
  concurrency: number;
  next: (signal: AbortSignal) => Promise<T | undefined>;
  work: (item: T, signal: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

export async function runWorkers<T>(opts: PoolOptions<T>): Promise<void> {
  const ctrl = new AbortController();
  // Every in-flight request listens on the signal: more than the default 10 is normal here.
  setMaxListeners(0, ctrl.signal);
  let firstError: { err: unknown } | undefined;
  const fail = (err: unknown) => {
    if (!firstError) firstError = { err };
    if (!ctrl.signal.aborted) ctrl.abort(err);
  };
  const onOuterAbort = () => fail(opts.signal?.reason ?? new Error('aborted'));
  if (opts.signal?.aborted) onOuterAbort();
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  let chain: Promise<unknown> = Promise.resolve();
  const take = (): Promise<T | undefined> => {
    const p = chain.then(() => (ctrl.signal.aborted ? undefined : opts.next(ctrl.signal)));
    chain = p.catch(() => undefined);
    return p;
  };
  const worker = async () => {
    while (!ctrl.signal.aborted) {
      let item: T | undefined;
      try {
        item = await take();
      } catch (err) {
        fail(err);
        return;
      }
      if (item === undefined) return;
      try {
        await opts.work(item, ctrl.signal);
      } catch (err) {
        fail(err);
        return;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.floor(opts.concurrency)) }, worker));
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
  if (firstError) throw firstError.err;
}
