/**
 * ChangedBlockSet: which blocks differ between a base snapshot P and a snapshot C of the same
 * lineage, from ListChangedBlocks(P, C), listed once in the background.
 *
 * Contract:
 * - The listing is paged (MaxResults 10,000; short and empty pages followed; retried, and an
 *   expired page token restarts where it stopped: src/ebs/paging.ts) through the volume's list
 *   limiter (the service allows 50 list calls/s) and counted as `ebs.changed.requests`.
 * - Pages come in ascending block order, so after a page every block up to its last index is
 *   known: `covers(i)` resolves true once the listing has reached block i (at once when it has),
 *   false when the listing failed or was stopped before reaching it. Only then may `isChanged(i)`
 *   be trusted: a block not listed by then is identical in P and C (both hold the same bytes, or
 *   neither holds it); a listed block differs, was written by either side, or exists in one only.
 * - `ready` resolves after the first page and rejects with its EbsError (UNRELATED_SNAPSHOTS when
 *   the two are not of one lineage), so a caller can choose another base.
 * - Memory: one set entry per changed block.
 */
import type { EbsApi } from '../ebs/api.js';
import type { RequestLimiter } from '../ebs/limiter.js';
import { changedBlockPages } from '../ebs/paging.js';
import { READ_RETRY, type RetryPolicy } from '../ebs/retry.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import type { Stats } from '../util/stats.js';

export const CHANGED_REQUESTS_STAT = 'ebs.changed.requests';

export interface ChangedBlockSetOptions {
  api: EbsApi;
  baseSnapshotId: string;
  snapshotId: string;
  listLimiter?: RequestLimiter;
  stats: Stats;
  logger?: Logger;
  policy?: RetryPolicy;
  /** Policy of the first page (the base choice waits for it). */
  firstPagePolicy?: RetryPolicy;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export class ChangedBlockSet {
  readonly baseSnapshotId: string;
  readonly snapshotId: string;
  readonly ready: Promise<void>;
  private readonly changed = new Set<number>();
  /** Every block at or below this index is known. */
  private coveredUpTo = -1;
  private ended = false;
  private failed: unknown = undefined;
  private waiters: { index: number; resolve: (covered: boolean) => void }[] = [];
  private readonly abort = new AbortController();

  constructor(private readonly opts: ChangedBlockSetOptions) {
    this.baseSnapshotId = opts.baseSnapshotId;
    this.snapshotId = opts.snapshotId;
    let firstSettled = false;
    let resolveReady!: () => void;
    let rejectReady!: (err: unknown) => void;
    this.ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    // Observed by the caller; never an unhandled rejection when nobody waits.
    this.ready.catch(() => undefined);
    void this.run(() => {
      if (!firstSettled) {
        firstSettled = true;
        resolveReady();
      }
    }).then(
      () => {
        if (!firstSettled) resolveReady();
      },
      (err: unknown) => {
        this.failed = err;
        if (!firstSettled) rejectReady(err);
        else if (!this.abort.signal.aborted) {
          (opts.logger ?? silentLogger).warn(
            { base: this.baseSnapshotId, snapshotId: this.snapshotId, errorType: (err as { type?: string })?.type },
            'listing changed blocks stopped: blocks past it are fetched',
          );
        }
        this.settleWaiters();
      },
    );
  }

  /** Changed blocks known so far. */
  get changedCount(): number {
    return this.changed.size;
  }

  get complete(): boolean {
    return this.ended && this.failed === undefined;
  }

  isChanged(index: number): boolean {
    return this.changed.has(index);
  }

  /** True once block `index` is known (changed or not); false if the listing will not reach it. */
  covers(index: number): Promise<boolean> | boolean {
    if (index <= this.coveredUpTo) return true;
    if (this.ended) return false;
    return new Promise((resolve) => this.waiters.push({ index, resolve }));
  }

  stop(): void {
    this.abort.abort();
  }

  private async run(onPage: () => void): Promise<void> {
    const { api, stats } = this.opts;
    const counted: Pick<EbsApi, 'listChangedBlocks'> = {
      listChangedBlocks: (first, second, o) => {
        stats.inc(CHANGED_REQUESTS_STAT);
        return api.listChangedBlocks(first, second, o);
      },
    };
    try {
      for await (const page of changedBlockPages(counted as EbsApi, this.baseSnapshotId, this.snapshotId, {
        limiter: this.opts.listLimiter,
        policy: this.opts.policy ?? READ_RETRY,
        firstPagePolicy: this.opts.firstPagePolicy,
        signal: this.abort.signal,
        sleep: this.opts.sleep,
        onRetry: () => stats.inc('ebs.list.retries'),
      })) {
        if (this.abort.signal.aborted) break;
        for (const b of page.blocks) this.changed.add(b.index);
        if (!page.nextToken) this.coveredUpTo = Number.MAX_SAFE_INTEGER;
        else if (page.blocks.length) this.coveredUpTo = Math.max(this.coveredUpTo, page.blocks[page.blocks.length - 1]!.index);
        onPage();
        this.settleWaiters();
      }
    } finally {
      this.ended = true;
      this.settleWaiters();
    }
  }

  private settleWaiters(): void {
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.index <= this.coveredUpTo) w.resolve(true);
      else if (this.ended) w.resolve(false);
      else still.push(w);
    }
    this.waiters = still;
  }
}
