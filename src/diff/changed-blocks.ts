/**
 * ChangedBlocks: the answer of ListChangedBlocks(A, B) for a whole volume, held compactly, and
 * the listing that fills it.
 *
 * Contract:
 * - `ChangedBlocks` keeps every changed index (ascending, unique) with which side holds data
 *   there: 'both' (A and B hold different data), 'a' (only A: B reads as zeros there), 'b' (only
 *   B). Five bytes per block (typed arrays), so even a whole 64 TiB volume's worth stays bounded.
 *   `ranges()` merges consecutive indexes; `overlaps(firstBlock, lastBlock)` answers by binary
 *   search whether any changed index lies in an inclusive range (used by the file diff to find
 *   files whose extents sit on changed blocks).
 * - `listChangedBlocks` pages through ListChangedBlocks (src/ebs/paging.ts: NextToken followed
 *   through short and empty pages, retries, restart on an expired page token) with one request
 *   in flight at most `listRate` per second (default 40: under the service's 50/s quota for list
 *   calls). The API's errors leave as the EbsError it gave (the caller words them);
 *   `onPage` reports progress.
 */
import type { ChangedPage, EbsApi } from '../ebs/api.js';
import { BLOCK_SIZE, MAX_LIST_RESULTS } from '../ebs/constants.js';
import { RequestLimiter } from '../ebs/limiter.js';
import { changedBlockPages } from '../ebs/paging.js';
import type { RetryPolicy } from '../ebs/retry.js';

export type Side = 'both' | 'a' | 'b';

const SIDE_CODE: Record<Side, number> = { both: 0, a: 1, b: 2 };
const SIDES: Side[] = ['both', 'a', 'b'];

/** An inclusive run of consecutive changed block indexes. */
export interface BlockRange {
  first: number;
  last: number;
}

export class ChangedBlocks {
  private idx = new Uint32Array(1024);
  private side = new Uint8Array(1024);
  private n = 0;
  private counts = [0, 0, 0];

  get size(): number {
    return this.n;
  }

  get bytes(): number {
    return this.n * BLOCK_SIZE;
  }

  /** How many changed blocks each side holds data for. */
  get sideCounts(): Record<Side, number> {
    return { both: this.counts[0]!, a: this.counts[1]!, b: this.counts[2]! };
  }

  /** Appends one index; indexes must come in strictly ascending order. */
  add(index: number, side: Side): void {
    if (this.n > 0 && index <= this.idx[this.n - 1]!) throw new RangeError(`changed block ${index} is not above ${this.idx[this.n - 1]}`);
    if (this.n === this.idx.length) {
      const idx = new Uint32Array(this.idx.length * 2);
      idx.set(this.idx);
      const side = new Uint8Array(this.side.length * 2);
      side.set(this.side);
      this.idx = idx;
      this.side = side;
    }
    this.idx[this.n] = index;
    this.side[this.n] = SIDE_CODE[side];
    this.counts[SIDE_CODE[side]]!++;
    this.n++;
  }

  /** Every changed block, ascending. */
  *entries(): Generator<{ index: number; side: Side }> {
    for (let i = 0; i < this.n; i++) yield { index: this.idx[i]!, side: SIDES[this.side[i]!]! };
  }

  has(index: number): boolean {
    const i = this.lowerBound(index);
    return i < this.n && this.idx[i] === index;
  }

  /** True when a changed index lies in [firstBlock, lastBlock]. */
  overlaps(firstBlock: number, lastBlock: number): boolean {
    const i = this.lowerBound(firstBlock);
    return i < this.n && this.idx[i]! <= lastBlock;
  }

  /** How many changed indexes lie in [firstBlock, lastBlock]. */
  countIn(firstBlock: number, lastBlock: number): number {
    if (lastBlock < firstBlock) return 0;
    return this.lowerBound(lastBlock + 1) - this.lowerBound(firstBlock);
  }

  /** Consecutive indexes merged into inclusive ranges, ascending. */
  ranges(): BlockRange[] {
    const out: BlockRange[] = [];
    for (let i = 0; i < this.n; i++) {
      const v = this.idx[i]!;
      const last = out[out.length - 1];
      if (last && last.last + 1 === v) last.last = v;
      else out.push({ first: v, last: v });
    }
    return out;
  }

  /** Index of the first entry ≥ value. */
  private lowerBound(value: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.idx[mid]! < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export function sideOf(b: { firstToken?: string; secondToken?: string }): Side {
  if (b.firstToken && b.secondToken) return 'both';
  return b.firstToken ? 'a' : 'b';
}

export interface ListChangedOptions {
  /** List calls per second (default 40, under the service's 50/s). */
  listRate?: number;
  maxResults?: number;
  policy?: RetryPolicy;
  firstPagePolicy?: RetryPolicy;
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  onPage?: (page: ChangedPage, soFar: number) => void;
}

export interface ChangedListing {
  blocks: ChangedBlocks;
  volumeSizeGiB: number;
  /** ListChangedBlocks requests made (retries included). */
  listRequests: number;
}

export async function listChangedBlocks(api: EbsApi, snapA: string, snapB: string, opts: ListChangedOptions = {}): Promise<ChangedListing> {
  const limiter = new RequestLimiter({ maxConcurrency: 1, ratePerSecond: opts.listRate ?? 40 });
  let listRequests = 0;
  // The same API object seen through a counter of the list calls it makes (retries included).
  const counted: EbsApi = Object.create(api) as EbsApi;
  counted.listChangedBlocks = (first, second, o) => {
    listRequests++;
    return api.listChangedBlocks(first, second, o);
  };
  const blocks = new ChangedBlocks();
  let volumeSizeGiB = 0;
  for await (const page of changedBlockPages(counted, snapA, snapB, {
    maxResults: opts.maxResults ?? MAX_LIST_RESULTS,
    limiter,
    policy: opts.policy,
    firstPagePolicy: opts.firstPagePolicy,
    signal: opts.signal,
    sleep: opts.sleep,
  })) {
    volumeSizeGiB = page.volumeSizeGiB;
    for (const b of page.blocks) blocks.add(b.index, sideOf(b));
    opts.onPage?.(page, blocks.size);
  }
  return { blocks, volumeSizeGiB, listRequests };
}
