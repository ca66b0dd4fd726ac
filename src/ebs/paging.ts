/**
 * Paging: async iterators over the pages of ListSnapshotBlocks / ListChangedBlocks, each page
 * fetched with withRetry.
 *
 * Contract:
 * - Pages are yielded in order until NextToken is null; short or empty pages with a NextToken
 *   are followed, never taken as the end (DESIGN §1).
 * - Every call is retried per `policy` (default READ_RETRY) on throttling, 5xx, timeouts and
 *   resets. An expired or invalid page token (ValidationException INVALID_PAGE_TOKEN) restarts
 *   the listing at the first index not yet yielded (StartingBlockIndex), without a NextToken.
 * - Yielded blocks are strictly ascending and unique across pages: anything at or below an
 *   index already yielded is dropped (a restarted listing may overlap).
 * - Other failures reject the iteration with the EbsError of the last attempt.
 * - `firstPagePolicy` (optional) replaces `policy` for the first page only.
 * - `limiter` (optional) bounds list calls (the service allows 50/s per account).
 */
import type { BlockPage, BlockRef, ChangedBlock, ChangedPage, EbsApi } from './api.js';
import { MAX_LIST_RESULTS } from './constants.js';
import { EbsError, Reason, retryKind, type RetryKind } from './errors.js';
import type { RequestLimiter } from './limiter.js';
import { READ_RETRY, withRetry, type RetryEvent, type RetryPolicy } from './retry.js';

export interface PagingOptions {
  startingBlockIndex?: number;
  maxResults?: number;
  policy?: RetryPolicy;
  /** Policy of the very first page only (e.g. fewer attempts, to report a dead endpoint fast). */
  firstPagePolicy?: RetryPolicy;
  limiter?: RequestLimiter;
  signal?: AbortSignal;
  onRetry?: (event: RetryEvent) => void;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

function classifyList(err: unknown): RetryKind {
  if (err instanceof EbsError && err.type === 'ValidationException' && err.reason === Reason.INVALID_PAGE_TOKEN) {
    return 'token';
  }
  return retryKind(err);
}

interface Paged<B extends { index: number }> {
  blocks: B[];
  nextToken?: string;
}

async function* pages<P extends Paged<B>, B extends { index: number }>(
  call: (o: { startingBlockIndex?: number; nextToken?: string; maxResults: number; signal?: AbortSignal }) => Promise<P>,
  opts: PagingOptions,
): AsyncGenerator<P> {
  const maxResults = opts.maxResults ?? MAX_LIST_RESULTS;
  let nextToken: string | undefined;
  let startingBlockIndex = opts.startingBlockIndex;
  /** Highest index yielded so far. */
  let last = -1;
  for (let pageNo = 0; ; pageNo++) {
    const page = await withRetry(
      () => {
        const fn = () => call({ startingBlockIndex: nextToken ? undefined : startingBlockIndex, nextToken, maxResults, signal: opts.signal });
        return opts.limiter ? opts.limiter.run(fn) : fn();
      },
      {
        policy: (pageNo === 0 ? opts.firstPagePolicy : undefined) ?? opts.policy ?? READ_RETRY,
        classify: classifyList,
        onRetry: opts.onRetry,
        signal: opts.signal,
        sleep: opts.sleep,
        beforeRetry: (kind, err) => {
          if (kind === 'token' && err instanceof EbsError && err.reason === Reason.INVALID_PAGE_TOKEN) {
            nextToken = undefined;
            startingBlockIndex = Math.max(startingBlockIndex ?? 0, last + 1);
          }
        },
      },
    );
    const fresh = page.blocks.filter((b) => b.index > last);
    fresh.sort((a, b) => a.index - b.index);
    if (fresh.length > 0) last = fresh[fresh.length - 1]!.index;
    yield { ...page, blocks: fresh };
    if (!page.nextToken) return;
    nextToken = page.nextToken;
  }
}

/** Pages of ListSnapshotBlocks for `snapshotId`. */
export function snapshotBlockPages(api: EbsApi, snapshotId: string, opts: PagingOptions = {}): AsyncGenerator<BlockPage> {
  return pages<BlockPage, BlockRef>((o) => api.listSnapshotBlocks(snapshotId, o), opts);
}

/** Pages of ListChangedBlocks between `first` (undefined: none) and `second`. */
export function changedBlockPages(
  api: EbsApi,
  firstSnapshotId: string | undefined,
  secondSnapshotId: string,
  opts: PagingOptions = {},
): AsyncGenerator<ChangedPage> {
  return pages<ChangedPage, ChangedBlock>((o) => api.listChangedBlocks(firstSnapshotId, secondSnapshotId, o), opts);
}

/** Every block of a snapshot, ascending, one at a time (with the page's expiry time). */
export async function* snapshotBlocks(
  api: EbsApi,
  snapshotId: string,
  opts: PagingOptions = {},
): AsyncGenerator<BlockRef & { expiryTime?: Date; volumeSizeGiB: number }> {
  for await (const page of snapshotBlockPages(api, snapshotId, opts)) {
    for (const b of page.blocks) yield { ...b, expiryTime: page.expiryTime, volumeSizeGiB: page.volumeSizeGiB };
  }
}

/** Collects a whole listing (tests and small snapshots only: memory grows with the block count). */
export async function listAllBlocks(
  api: EbsApi,
  snapshotId: string,
  opts: PagingOptions = {},
): Promise<{ blocks: BlockRef[]; volumeSizeGiB: number }> {
  const blocks: BlockRef[] = [];
  let volumeSizeGiB = 0;
  for await (const page of snapshotBlockPages(api, snapshotId, opts)) {
    volumeSizeGiB = page.volumeSizeGiB;
    blocks.push(...page.blocks);
  }
  return { blocks, volumeSizeGiB };
}

export async function listAllChangedBlocks(
  api: EbsApi,
  firstSnapshotId: string | undefined,
  secondSnapshotId: string,
  opts: PagingOptions = {},
): Promise<ChangedBlock[]> {
  const out: ChangedBlock[] = [];
  for await (const page of changedBlockPages(api, firstSnapshotId, secondSnapshotId, opts)) out.push(...page.blocks);
  return out;
}
