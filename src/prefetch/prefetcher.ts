/**
 * Prefetcher: the ReadObserver that turns the SequentialDetector's plans into background
 * fetches into the CacheStore.
 *
 * Contract: onRead never waits and never throws; it only queues `cache.prefetch(i)` for planned
 * blocks (background priority, skipped when cached, in flight or known zero). The window is
 * capped at min(read-ahead, the cache's prefetch budget = a quarter of the cache), so read-ahead
 * never evicts what it fetched before it is read. `close()` stops it.
 */
import { BLOCK_SIZE } from '../ebs/constants.js';
import type { ReadObserver } from '../store/block-store.js';
import type { PrefetchResult } from '../store/cache-store.js';
import { SequentialDetector, type SequentialDetectorOptions } from './sequential-detector.js';

export const DEFAULT_READ_AHEAD_BYTES = 32 * 1024 * 1024;

export interface PrefetchTarget {
  prefetch(index: number): PrefetchResult;
  readonly prefetchBudgetBlocks: number;
}

export interface PrefetcherOptions {
  cache: PrefetchTarget;
  totalBlocks: number;
  readAheadBytes: number;
  /** Overrides of the detector's tuning (tests). */
  detector?: Partial<Omit<SequentialDetectorOptions, 'totalBlocks' | 'maxWindowBlocks'>>;
}

export class Prefetcher implements ReadObserver {
  readonly detector: SequentialDetector;
  private readonly cache: PrefetchTarget;
  private closed = false;

  constructor(opts: PrefetcherOptions) {
    this.cache = opts.cache;
    const readAheadBlocks = Math.floor(Math.max(0, opts.readAheadBytes) / BLOCK_SIZE);
    this.detector = new SequentialDetector({
      ...opts.detector,
      totalBlocks: opts.totalBlocks,
      maxWindowBlocks: Math.min(readAheadBlocks, opts.cache.prefetchBudgetBlocks),
    });
  }

  onRead(firstBlock: number, lastBlock: number): void {
    if (this.closed || this.detector.maxWindowBlocks === 0) return;
    const plan = this.detector.onRead(firstBlock, lastBlock);
    if (!plan) return;
    let issued = plan.start - 1;
    for (let i = plan.start; i <= plan.end; i++) {
      if (this.cache.prefetch(i) === 'full') break;
      issued = i;
    }
    this.detector.issuedThrough(plan.stream, issued);
  }

  close(): void {
    this.closed = true;
    this.detector.reset();
  }
}
