/**
 * Fault injection of the local EBS server (for tests and benchmarks). Off unless a flag is set.
 *
 * Contract:
 * - `delay()`: latencyMs plus a uniform random 0..jitterMs, added to every request.
 * - `admit(key)`: a token bucket per snapshot (capacity and refill = rateLimit per second); a
 *   request beyond it is RequestThrottledException (400). Requests with no snapshot (StartSnapshot)
 *   share one bucket. Then `throttleRate` of requests are throttled and `errorRate` answered with
 *   InternalServerException (500), at random.
 * - `maybeCorrupt(buf)`: with probability corruptRate, flips bytes of a GetSnapshotBlock body in
 *   place (the caller keeps the true checksum in the headers) and returns true.
 * - `missingAfterStartMs`: puts into a snapshot younger than this fail with
 *   ResourceNotFoundException "snapshot does not exist" (checked by the handler).
 * - `random` is injectable so unit tests are deterministic.
 */
import { ApiError } from './wire.js';

export interface FaultOptions {
  latencyMs: number;
  latencyJitterMs: number;
  /** Requests per second per snapshot; 0 = unlimited. */
  rateLimit: number;
  throttleRate: number;
  errorRate: number;
  corruptRate: number;
  missingAfterStartMs: number;
}

export const NO_FAULTS: FaultOptions = {
  latencyMs: 0,
  latencyJitterMs: 0,
  rateLimit: 0,
  throttleRate: 0,
  errorRate: 0,
  corruptRate: 0,
  missingAfterStartMs: 0,
};

interface Bucket {
  tokens: number;
  last: number;
}

export class Faults {
  private readonly buckets = new Map<string, Bucket>();
  readonly counts = { throttled: 0, rateLimited: 0, errors: 0, corrupted: 0, missing: 0 };

  constructor(
    readonly opts: FaultOptions,
    private readonly random: () => number = Math.random,
    private readonly now: () => number = () => performance.now(),
  ) {}

  delayMs(): number {
    const { latencyMs, latencyJitterMs } = this.opts;
    if (latencyMs <= 0 && latencyJitterMs <= 0) return 0;
    return latencyMs + (latencyJitterMs > 0 ? this.random() * latencyJitterMs : 0);
  }

  async delay(): Promise<void> {
    const ms = this.delayMs();
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  }

  /** Throws the injected failure for this request, if any. `key` is the snapshot id or ''. */
  admit(key: string): void {
    const { rateLimit, throttleRate, errorRate } = this.opts;
    if (rateLimit > 0 && !this.take(key, rateLimit)) {
      this.counts.rateLimited++;
      throw new ApiError(
        'RequestThrottledException',
        `The request rate for this snapshot exceeds ${rateLimit} requests per second.`,
        'RESOURCE_LEVEL_THROTTLE',
      );
    }
    if (throttleRate > 0 && this.random() < throttleRate) {
      this.counts.throttled++;
      throw new ApiError('RequestThrottledException', 'Request throttled (injected fault).', 'ACCOUNT_THROTTLED');
    }
    if (errorRate > 0 && this.random() < errorRate) {
      this.counts.errors++;
      throw new ApiError('InternalServerException', 'Internal server error (injected fault).');
    }
  }

  maybeCorrupt(buf: Buffer): boolean {
    if (this.opts.corruptRate <= 0 || this.random() >= this.opts.corruptRate) return false;
    // Flip a few bytes spread over the block, so any check of the data sees the damage.
    const n = 1 + Math.floor(this.random() * 8);
    for (let k = 0; k < n; k++) {
      const pos = Math.floor(this.random() * buf.length);
      buf[pos] = buf[pos]! ^ 0xff;
    }
    this.counts.corrupted++;
    return true;
  }

  private take(key: string, rate: number): boolean {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: rate, last: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(rate, b.tokens + ((t - b.last) / 1000) * rate);
    b.last = t;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
