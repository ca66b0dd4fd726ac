/**
 * Abort helpers for per-operation deadlines (src/fs/op-deadline.ts): a caller stops waiting
 * when its signal aborts, while shared work it joined (a single-flight fetch, a listing) goes on
 * for the others — and is itself aborted only when every waiter has gone (WaiterSignal).
 *
 * Contract:
 * - raceSignal(p, signal) settles like `p`, or rejects with the signal's reason as soon as the
 *   signal aborts (already aborted: at once). `p`'s own rejection is then still handled (no
 *   unhandled rejection). Without a signal it is `p`.
 * - WaiterSignal: `join(signal?)` adds a waiter; a waiter without a signal never leaves. The
 *   shared `signal` aborts once every joined waiter's signal has aborted (never before the
 *   first join).
 * - linkSignals(a, b): one signal for both, detached again by dispose().
 */

/** The error a deadline-aborted wait rejects with when the signal carries no reason. */
export class AbortedError extends Error {
  override readonly name = 'AbortError';
}

export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new AbortedError('aborted');
}

export function raceSignal<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => {});
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** A signal that aborts when every waiter that joined has aborted. */
export class WaiterSignal {
  private readonly controller = new AbortController();
  private waiting = 0;
  private permanent = false;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  join(signal: AbortSignal | undefined): void {
    if (this.controller.signal.aborted) return;
    if (!signal) {
      this.permanent = true;
      return;
    }
    if (signal.aborted) {
      this.maybeAbort(signal);
      return;
    }
    this.waiting++;
    signal.addEventListener('abort', () => {
      this.waiting--;
      this.maybeAbort(signal);
    }, { once: true });
  }

  private maybeAbort(signal: AbortSignal): void {
    if (!this.permanent && this.waiting === 0) this.controller.abort(abortReason(signal));
  }
}

/**
 * `a` and `b` combined (either aborts it); `dispose()` detaches it from both (call it when done:
 * a long-lived `a` must not keep every combined signal alive).
 */
export function linkSignals(a: AbortSignal | undefined, b: AbortSignal | undefined): { signal: AbortSignal | undefined; dispose: () => void } {
  if (!a || !b) return { signal: a ?? b, dispose: () => {} };
  const controller = new AbortController();
  if (a.aborted || b.aborted) {
    controller.abort(abortReason(a.aborted ? a : b));
    return { signal: controller.signal, dispose: () => {} };
  }
  const onA = () => controller.abort(abortReason(a));
  const onB = () => controller.abort(abortReason(b));
  a.addEventListener('abort', onA, { once: true });
  b.addEventListener('abort', onB, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      a.removeEventListener('abort', onA);
      b.removeEventListener('abort', onB);
    },
  };
}
