/**
 * Retry policy: jittered exponential backoff inside a time budget.
 *
 * Contract:
 * - `withRetry(fn, opts)` calls `fn` until it resolves, the error is classified 'fatal', the
 *   attempts are used up, the next wait would end after `budgetMs` (counted from the first
 *   attempt), or `signal` aborts. It then rethrows the LAST error unchanged, so callers see the
 *   service's error, not a wrapper.
 * - Waits: 'transient' and 'not-yet' use full jitter (uniform in [0, cap]); 'throttle' uses equal
 *   jitter (at least half the cap: a throttled client must really slow down); 'token' retries at
 *   once the first time (the caller refreshes the token in `beforeRetry`), then backs off.
 *   cap = min(maxDelayMs, baseDelayMs × 2^(attempt−1)).
 * - READ_RETRY's budget (45 s) plus one request timeout (30 s) ends before the FUSE op timeout
 *   (80 s, src/fs/fuse-options.ts), so
 *   a read that keeps failing answers EIO instead of the kernel's ETIMEDOUT. WRITE_RETRY covers
 *   the ~2 minutes in which a new snapshot may answer "does not exist".
 */
import type { RetryKind } from './errors.js';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** No retry starts later than this after the first attempt. */
  budgetMs: number;
}

export const READ_RETRY: RetryPolicy = { maxAttempts: 12, baseDelayMs: 50, maxDelayMs: 4_000, budgetMs: 45_000 };
export const WRITE_RETRY: RetryPolicy = { maxAttempts: 40, baseDelayMs: 100, maxDelayMs: 8_000, budgetMs: 180_000 };

export interface RetryEvent {
  attempt: number;
  kind: RetryKind;
  err: unknown;
  delayMs: number;
}

export interface RetryOptions {
  policy: RetryPolicy;
  classify: (err: unknown) => RetryKind;
  onRetry?: (event: RetryEvent) => void;
  /** Runs after the wait, before the next attempt (e.g. refresh a block token). */
  beforeRetry?: (kind: RetryKind, err: unknown) => Promise<void> | void;
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
  random?: () => number;
}

/** Wait before attempt `attempt + 1`, after `attempt` failed attempts of kind `kind`. */
export function backoffDelay(attempt: number, policy: RetryPolicy, kind: RetryKind, random: () => number = Math.random): number {
  if (kind === 'token' && attempt <= 1) return 0;
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  if (kind === 'throttle') return Math.round(cap / 2 + (random() * cap) / 2);
  return Math.round(random() * cap);
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? abortableSleep;
  const started = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      const kind = opts.classify(err);
      if (kind === 'fatal' || attempt >= opts.policy.maxAttempts || opts.signal?.aborted) throw err;
      const delayMs = backoffDelay(attempt, opts.policy, kind, opts.random);
      if (now() + delayMs - started > opts.policy.budgetMs) throw err;
      opts.onRetry?.({ attempt, kind, err, delayMs });
      try {
        await sleep(delayMs, opts.signal);
      } catch {
        throw err;
      }
      if (opts.signal?.aborted) throw err;
      await opts.beforeRetry?.(kind, err);
    }
  }
}
