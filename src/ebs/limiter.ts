/**
 * RequestLimiter: bounds requests in flight and their start rate, with two priorities.
 *
 * Contract:
 * - At most `maxConcurrency` functions run at once, and starts are paced by a token bucket of
 *   `ratePerSecond` (burst: up to maxConcurrency, at most one second's worth). Omitting the rate
 *   means no pacing.
 * - 'demand' work always starts before queued 'background' work; background work never holds
 *   more than `backgroundCap` slots (default: all), so a prefetch storm leaves slots for reads.
 * - FIFO within a priority. `run` resolves/rejects with fn's result; a throwing fn frees its slot.
 * - `signal` (an operation's deadline): while the job is still queued, its abort removes the job
 *   (fn is never called) and `run` rejects with the signal's reason; once started, the job runs
 *   to its end (its result may still fill a cache).
 */
import { abortReason } from '../util/abort.js';

export type Priority = 'demand' | 'background';

export interface LimiterOptions {
  maxConcurrency: number;
  ratePerSecond?: number;
  now?: () => number;
}

interface Job {
  start: () => void;
}

export class RequestLimiter {
  readonly maxConcurrency: number;
  readonly ratePerSecond: number | undefined;
  private backgroundCap: number;
  private running = 0;
  private backgroundRunning = 0;
  private readonly demand: Job[] = [];
  private readonly background: Job[] = [];
  private tokens: number;
  private readonly burst: number;
  private lastRefill: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(opts: LimiterOptions) {
    if (!(opts.maxConcurrency >= 1)) throw new RangeError('maxConcurrency must be at least 1');
    if (opts.ratePerSecond !== undefined && !(opts.ratePerSecond > 0)) throw new RangeError('ratePerSecond must be positive');
    this.maxConcurrency = Math.floor(opts.maxConcurrency);
    this.ratePerSecond = opts.ratePerSecond;
    this.backgroundCap = this.maxConcurrency;
    this.now = opts.now ?? (() => performance.now());
    this.burst = opts.ratePerSecond ? Math.max(1, Math.min(this.maxConcurrency, opts.ratePerSecond)) : Infinity;
    this.tokens = this.burst;
    this.lastRefill = this.now();
  }

  setBackgroundCap(n: number): void {
    this.backgroundCap = Math.max(0, Math.min(this.maxConcurrency, Math.floor(n)));
    this.pump();
  }

  get inFlight(): number {
    return this.running;
  }

  get queued(): number {
    return this.demand.length + this.background.length;
  }

  run<T>(fn: () => Promise<T>, priority: Priority = 'demand', signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<T>((resolve, reject) => {
      const queue = priority === 'demand' ? this.demand : this.background;
      const onAbort = () => {
        const at = queue.indexOf(job);
        if (at < 0) return;
        queue.splice(at, 1);
        reject(abortReason(signal!));
      };
      const job: Job = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.running++;
          if (priority === 'background') this.backgroundRunning++;
          let p: Promise<T>;
          try {
            p = fn();
          } catch (err) {
            p = Promise.reject(err);
          }
          const release = () => {
            this.running--;
            if (priority === 'background') this.backgroundRunning--;
            this.pump();
          };
          p.then(
            (v) => {
              release();
              resolve(v);
            },
            (err: unknown) => {
              release();
              reject(err);
            },
          );
        },
      };
      queue.push(job);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pump();
    });
  }

  private refill(): void {
    if (this.ratePerSecond === undefined) return;
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.lastRefill) * this.ratePerSecond) / 1000);
    this.lastRefill = t;
  }

  private nextJob(): Job | undefined {
    if (this.demand.length > 0) return this.demand.shift();
    if (this.background.length > 0 && this.backgroundRunning < this.backgroundCap) return this.background.shift();
    return undefined;
  }

  private hasStartable(): boolean {
    return this.demand.length > 0 || (this.background.length > 0 && this.backgroundRunning < this.backgroundCap);
  }

  private pump(): void {
    this.refill();
    while (this.running < this.maxConcurrency && this.hasStartable()) {
      if (this.ratePerSecond !== undefined) {
        if (this.tokens < 1) {
          this.scheduleRefill();
          return;
        }
        this.tokens -= 1;
      }
      this.nextJob()!.start();
    }
  }

  private scheduleRefill(): void {
    if (this.timer || this.ratePerSecond === undefined) return;
    const waitMs = Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSecond));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, waitMs);
  }
}
