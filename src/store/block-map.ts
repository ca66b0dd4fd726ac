/**
 * BlockMap: which blocks a completed snapshot has, and their block tokens, learned lazily by
 * range with ListSnapshotBlocks (StartingBlockIndex, MaxResults 10,000).
 *
 * Design:
 * - The index space is cut into segments of `segmentBlocks` (default 8,192 blocks = 4 GiB, so a
 *   dense segment is one full page). `lookup(i)` loads i's segment: list from the segment start,
 *   following NextToken until the pages pass the segment end or NextToken is null. Nothing is
 *   listed at mount beyond the one page the opener already has (`ingest`), so mount time and
 *   memory do not grow with the volume size.
 * - A page that returns blocks up to index L proves there are no other blocks in
 *   [cursor, L]; with NextToken null, up to the end of the volume. Every segment a listing
 *   covers completely is learned at once: empty ones are remembered forever in a byte per segment
 *   (a snapshot's allocation never changes; 16 KiB for the largest volume), non-empty ones keep
 *   their tokens (the requested segment plus a few following ones).
 * - Tokens live in a bounded LRU of segments (`maxSegments`), so memory is bounded whatever the
 *   volume size. A segment is re-listed before its tokens expire (within 5 min of ExpiryTime, or
 *   10% of the TTL for short TTLs) and after `invalidate` (INVALID_BLOCK_TOKEN). Concurrent loads
 *   of one segment share one listing (single flight); an expired page token restarts the listing
 *   from the first index not yet known.
 * - List calls go through their own limiter at 'demand' priority (a read waits on them) and
 *   `withRetry`; failures reach the caller as the EbsError of the last attempt.
 */
import { LRUCache } from 'lru-cache';
import type { BlockPage, BlockRef, EbsApi } from '../ebs/api.js';
import { BLOCKS_PER_GIB, MAX_LIST_RESULTS } from '../ebs/constants.js';
import { Reason, retryKind, EbsError, type RetryKind } from '../ebs/errors.js';
import type { RequestLimiter, Priority } from '../ebs/limiter.js';
import { withRetry, READ_RETRY, type RetryPolicy } from '../ebs/retry.js';
import { raceSignal } from '../util/abort.js';
import { silentLogger, type Logger } from '../util/log.js';
import { StatKey, type Stats } from '../util/stats.js';

export const DEFAULT_SEGMENT_BLOCKS = 8_192;
/** 16 segments of 8,192 tokens: a few tens of MiB at most with AWS-sized tokens. */
export const DEFAULT_MAX_SEGMENTS = 16;
/** Refresh tokens this long before they expire, or at 10% of the TTL when that is shorter. */
export const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;

interface Segment {
  tokens: Map<number, string>;
  /** ms epoch after which lookups re-list the segment. */
  refreshAt: number;
}

export interface BlockMapOptions {
  api: EbsApi;
  snapshotId: string;
  volumeSizeGiB: number;
  stats: Stats;
  /** Limits list calls (the service allows 50/s per account). */
  listLimiter: RequestLimiter;
  logger?: Logger;
  segmentBlocks?: number;
  maxSegments?: number;
  retryPolicy?: RetryPolicy;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  signal?: AbortSignal;
}

/** What a listing proved: every block in [from, to] is one of `blocks`. */
export interface CoveredRange {
  from: number;
  to: number;
  blocks: readonly BlockRef[];
  expiryTime?: Date;
}

/**
 * Pages through a listing from `startIndex`, calling `onPage` with each page's proven range,
 * until `stopAfter` is covered, NextToken is null, or `shouldStop()` says so.
 * An invalid page token restarts from the first index not yet covered. Returns the first index
 * not yet known (totalBlocks when the listing reached the end).
 */
export async function listCovering(opts: {
  api: EbsApi;
  snapshotId: string;
  totalBlocks: number;
  startIndex: number;
  /** Stop once every index ≤ stopAfter is covered. */
  stopAfter: number;
  /** Continue an earlier listing instead of starting at startIndex. */
  nextToken?: string;
  limiter: RequestLimiter;
  priority: Priority;
  policy: RetryPolicy;
  stats: Stats;
  sleep?: (ms: number) => Promise<void>;
  signal?: AbortSignal;
  shouldStop?: () => boolean;
  onPage: (range: CoveredRange) => void;
}): Promise<number> {
  let cursor = opts.startIndex;
  let nextToken = opts.nextToken;
  do {
    const page: BlockPage = await withRetry(
      () => {
        opts.stats.inc(StatKey.ebsListRequests);
        return opts.limiter.run(
          () =>
            opts.api.listSnapshotBlocks(opts.snapshotId, {
              ...(nextToken ? { nextToken } : { startingBlockIndex: cursor }),
              maxResults: MAX_LIST_RESULTS,
              signal: opts.signal,
            }),
          opts.priority,
        );
      },
      {
        policy: opts.policy,
        classify: classifyListError,
        onRetry: () => opts.stats.inc(StatKey.ebsListRetries),
        beforeRetry: async (kind) => {
          if (kind === 'token') nextToken = undefined;
        },
        signal: opts.signal,
        sleep: opts.sleep,
      },
    );
    const covered = coveredByPage(cursor, page, opts.totalBlocks);
    cursor = covered.cursor;
    nextToken = page.nextToken;
    if (covered.range) opts.onPage(covered.range);
  } while (nextToken && cursor <= opts.stopAfter && !(opts.shouldStop?.() ?? false));
  return cursor;
}

/**
 * What one page proves when it was listed from `from`: the covered range (null when it proves
 * nothing new, e.g. an empty page with a NextToken) and the first index still unknown.
 */
export function coveredByPage(
  from: number,
  page: BlockPage,
  totalBlocks: number,
): { range: CoveredRange | null; cursor: number } {
  const blocks = page.blocks.filter((b) => b.index >= from && b.index < totalBlocks);
  let cursor = from;
  if (!page.nextToken) cursor = totalBlocks;
  else if (blocks.length > 0) cursor = blocks[blocks.length - 1]!.index + 1;
  const range = cursor > from ? { from, to: cursor - 1, blocks, expiryTime: page.expiryTime } : null;
  return { range, cursor };
}

/** A stale page token is fixed by listing again from where we are (like a stale block token). */
function classifyListError(err: unknown): RetryKind {
  if (err instanceof EbsError && err.type === 'ValidationException' && err.reason === Reason.INVALID_PAGE_TOKEN) {
    return 'token';
  }
  const kind = retryKind(err);
  return kind === 'token' ? 'fatal' : kind;
}

export class BlockMap {
  readonly totalBlocks: number;
  readonly segmentBlocks: number;
  private readonly opts: BlockMapOptions;
  private readonly now: () => number;
  private readonly logger: Logger;
  /** 1 where a segment is known to hold no block. Permanent: a snapshot never changes. */
  private readonly emptySegments: Uint8Array;
  private readonly segments: LRUCache<number, Segment>;
  private readonly loading = new Map<number, Promise<Segment | null>>();

  constructor(opts: BlockMapOptions) {
    this.opts = opts;
    this.totalBlocks = opts.volumeSizeGiB * BLOCKS_PER_GIB;
    this.segmentBlocks = opts.segmentBlocks ?? DEFAULT_SEGMENT_BLOCKS;
    this.now = opts.now ?? Date.now;
    this.logger = opts.logger ?? silentLogger;
    this.emptySegments = new Uint8Array(Math.ceil(this.totalBlocks / this.segmentBlocks));
    this.segments = new LRUCache({ max: Math.max(1, opts.maxSegments ?? DEFAULT_MAX_SEGMENTS) });
  }

  /** Segments whose tokens are held (bounded by maxSegments). */
  get cachedSegments(): number {
    return this.segments.size;
  }

  /**
   * Without I/O: the block's token, null when the block is known to read as zeros, undefined
   * when its segment must be (re)listed first.
   */
  peek(index: number): string | null | undefined {
    const seg = Math.floor(index / this.segmentBlocks);
    if (this.emptySegments[seg] === 1) return null;
    const segment = this.segments.get(seg);
    if (!segment || this.now() >= segment.refreshAt) return undefined;
    return segment.tokens.get(index) ?? null;
  }

  /** True when the block is known, without I/O, to read as zeros. */
  isKnownZero(index: number): boolean {
    return this.peek(index) === null;
  }

  /**
   * The block's token, or null when the snapshot lacks the block (it reads as zeros). `signal`
   * (the caller's deadline) ends the wait for a listing; the listing itself goes on (shared).
   */
  async lookup(index: number, signal?: AbortSignal): Promise<string | null> {
    if (!(index >= 0 && index < this.totalBlocks)) throw new RangeError(`block index ${index} outside the volume`);
    const known = this.peek(index);
    if (known !== undefined) return known;
    const segment = await raceSignal(this.loadSegment(Math.floor(index / this.segmentBlocks)), signal);
    return segment?.tokens.get(index) ?? null;
  }

  /**
   * `token` was refused (INVALID_BLOCK_TOKEN): forget the block's segment so the next lookup
   * lists it again, unless it was already re-listed since that token was handed out.
   */
  invalidate(index: number, token: string): void {
    const seg = Math.floor(index / this.segmentBlocks);
    const segment = this.segments.peek(seg);
    if (segment && segment.tokens.get(index) === token) this.segments.delete(seg);
  }

  /** Learns from a listing made elsewhere (the opener's first page). Keeps tokens. */
  ingest(range: CoveredRange, requestedSegment?: number): void {
    const first = Math.ceil(range.from / this.segmentBlocks);
    const lastExclusive = range.to + 1 >= this.totalBlocks
      ? this.emptySegments.length
      : Math.floor((range.to + 1) / this.segmentBlocks);
    if (lastExclusive <= first) return;
    const refreshAt = this.refreshTime(range.expiryTime);
    // Keep tokens for the requested segment and a few that follow it (a sequential reader's next
    // stop); every fully covered empty segment is remembered regardless.
    const keepFrom = requestedSegment ?? first;
    const keepUntil = keepFrom + Math.max(1, Math.floor(this.segments.max / 4));
    let b = 0;
    const blocks = range.blocks;
    while (b < blocks.length && blocks[b]!.index < first * this.segmentBlocks) b++;
    const kept: [number, Segment][] = [];
    for (let seg = first; seg < lastExclusive; seg++) {
      const segEnd = (seg + 1) * this.segmentBlocks;
      if (b >= blocks.length || blocks[b]!.index >= segEnd) {
        this.emptySegments[seg] = 1;
        continue;
      }
      const keep = seg >= keepFrom && seg < keepUntil;
      const tokens = new Map<number, string>();
      for (; b < blocks.length && blocks[b]!.index < segEnd; b++) if (keep) tokens.set(blocks[b]!.index, blocks[b]!.token);
      if (keep) kept.push([seg, { tokens, refreshAt }]);
    }
    // Requested segment last, so it is the most recently used one.
    kept.sort((x, y) => (x[0] === requestedSegment ? 1 : 0) - (y[0] === requestedSegment ? 1 : 0));
    for (const [seg, segment] of kept) this.segments.set(seg, segment);
  }

  /** Learns only which segments are empty (the background count scan: tokens are dropped). */
  noteEmpty(range: CoveredRange): void {
    const first = Math.ceil(range.from / this.segmentBlocks);
    const lastExclusive = range.to + 1 >= this.totalBlocks
      ? this.emptySegments.length
      : Math.floor((range.to + 1) / this.segmentBlocks);
    let b = 0;
    const blocks = range.blocks;
    for (let seg = first; seg < lastExclusive; seg++) {
      const segStart = seg * this.segmentBlocks;
      const segEnd = segStart + this.segmentBlocks;
      while (b < blocks.length && blocks[b]!.index < segStart) b++;
      if (b >= blocks.length || blocks[b]!.index >= segEnd) this.emptySegments[seg] = 1;
    }
  }

  private refreshTime(expiry: Date | undefined): number {
    if (!expiry) return Infinity;
    const expiresAt = expiry.getTime();
    const ttl = Math.max(0, expiresAt - this.now());
    return expiresAt - Math.min(TOKEN_REFRESH_MARGIN_MS, ttl / 10);
  }

  private loadSegment(seg: number): Promise<Segment | null> {
    const inFlight = this.loading.get(seg);
    if (inFlight) return inFlight;
    const promise = this.listSegment(seg).finally(() => this.loading.delete(seg));
    this.loading.set(seg, promise);
    return promise;
  }

  private async listSegment(seg: number): Promise<Segment | null> {
    const start = seg * this.segmentBlocks;
    const end = Math.min(start + this.segmentBlocks, this.totalBlocks) - 1;
    this.segments.delete(seg);
    // Collect every page first: a segment is learned only once it is covered completely.
    const pages: CoveredRange[] = [];
    await listCovering({
      api: this.opts.api,
      snapshotId: this.opts.snapshotId,
      totalBlocks: this.totalBlocks,
      startIndex: start,
      stopAfter: end,
      limiter: this.opts.listLimiter,
      priority: 'demand',
      policy: this.opts.retryPolicy ?? READ_RETRY,
      stats: this.opts.stats,
      sleep: this.opts.sleep,
      signal: this.opts.signal,
      onPage: (range) => pages.push(range),
    });
    const expiries = pages.map((p) => p.expiryTime?.getTime()).filter((t): t is number => t !== undefined);
    this.ingest(
      {
        from: start,
        to: pages[pages.length - 1]?.to ?? start - 1,
        blocks: pages.length === 1 ? pages[0]!.blocks : pages.flatMap((p) => p.blocks),
        expiryTime: expiries.length ? new Date(Math.min(...expiries)) : undefined,
      },
      seg,
    );
    this.logger.debug({ snapshotId: this.opts.snapshotId, segment: seg, pages: pages.length }, 'block map segment listed');
    if (this.emptySegments[seg] === 1) return null;
    const segment = this.segments.peek(seg);
    if (!segment) throw new Error(`listing did not cover segment ${seg}`);
    return segment;
  }
}
