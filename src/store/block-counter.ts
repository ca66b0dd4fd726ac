/**
 * AllocatedBlockCounter: counts a snapshot's blocks (for st_blocks / `du`) by listing the whole
 * snapshot in the background after mount.
 *
 * Contract: `count` is the number of blocks known so far and is final once `done`; `whenDone()`
 * resolves with it (also after a failure or stop: then it stays partial, `failed` says why).
 * Listing runs at 'background' priority in the list limiter, so demand listings go first; page
 * tokens and block tokens are dropped as soon as each page is counted (memory does not grow), and
 * an expired page token restarts from the first index not yet counted. Fully covered empty
 * ranges are reported through `onRange` (the block map remembers empty segments).
 */
import type { EbsApi } from '../ebs/api.js';
import { BLOCKS_PER_GIB } from '../ebs/constants.js';
import type { RequestLimiter } from '../ebs/limiter.js';
import { READ_RETRY, type RetryPolicy } from '../ebs/retry.js';
import { silentLogger, type Logger } from '../util/log.js';
import type { Stats } from '../util/stats.js';
import { listCovering, type CoveredRange } from './block-map.js';

export interface AllocatedBlockCounterOptions {
  api: EbsApi;
  snapshotId: string;
  volumeSizeGiB: number;
  listLimiter: RequestLimiter;
  stats: Stats;
  logger?: Logger;
  retryPolicy?: RetryPolicy;
  sleep?: (ms: number) => Promise<void>;
  onRange?: (range: CoveredRange) => void;
}

/** A listing already made from index 0: what it covered, the next index, its NextToken. */
export interface CounterSeed {
  range: CoveredRange | null;
  cursor: number;
  nextToken?: string;
}

export class AllocatedBlockCounter {
  count = 0;
  done = false;
  failed: unknown = undefined;
  private readonly opts: AllocatedBlockCounterOptions;
  private readonly abort = new AbortController();
  private running: Promise<number> | undefined;

  constructor(opts: AllocatedBlockCounterOptions) {
    this.opts = opts;
  }

  /**
   * Starts counting. `seed` is a listing already made from index 0 (the opener's first page):
   * its blocks are counted and the scan continues after it.
   */
  start(seed?: CounterSeed): void {
    if (this.running) return;
    this.running = this.run(seed);
  }

  whenDone(): Promise<number> {
    return this.running ?? Promise.resolve(this.count);
  }

  stop(): void {
    this.abort.abort();
  }

  private async run(seed?: CounterSeed): Promise<number> {
    const totalBlocks = this.opts.volumeSizeGiB * BLOCKS_PER_GIB;
    let cursor = 0;
    let nextToken: string | undefined;
    const onPage = (range: CoveredRange): void => {
      this.count += range.blocks.length;
      this.opts.onRange?.(range);
    };
    if (seed) {
      if (seed.range) onPage(seed.range);
      cursor = seed.cursor;
      nextToken = seed.nextToken;
    }
    try {
      // Start from a seed's token when there is one; listCovering restarts from the cursor if
      // that token has expired meanwhile.
      if (cursor < totalBlocks) {
        await listCovering({
          api: this.opts.api,
          snapshotId: this.opts.snapshotId,
          totalBlocks,
          startIndex: cursor,
          nextToken,
          stopAfter: totalBlocks - 1,
          limiter: this.opts.listLimiter,
          priority: 'background',
          policy: this.opts.retryPolicy ?? READ_RETRY,
          stats: this.opts.stats,
          sleep: this.opts.sleep,
          signal: this.abort.signal,
          shouldStop: () => this.abort.signal.aborted,
          onPage,
        });
      }
      if (!this.abort.signal.aborted) this.done = true;
    } catch (err) {
      this.failed = err;
      if (!this.abort.signal.aborted) {
        (this.opts.logger ?? silentLogger).warn(
          { snapshotId: this.opts.snapshotId, counted: this.count, errorType: (err as { type?: string })?.type },
          'counting allocated blocks stopped',
        );
      }
    }
    return this.count;
  }
}
