/**
 * Verified block fetches for transfers (export, and the parent comparison of import).
 *
 * Contract:
 * - `fetchVerifiedBlock` returns a block's bytes only after checking DataLength = 524,288, the
 *   body length and SHA-256(body) = the response checksum; a mismatch is retried as a transient
 *   EbsError('ChecksumMismatch'). Throttling, 5xx, timeouts and resets are retried per `policy`
 *   (default READ_RETRY); INVALID_BLOCK_TOKEN asks the TokenRefresher for a new token (a re-list
 *   from that index), then retries. Other errors, or retries running out, reject with the last
 *   EbsError.
 * - ListingTokenRefresher re-lists one page from the failing index and keeps it, so the many
 *   workers whose tokens expired together share a few list calls instead of one each; a listing
 *   that no longer holds the block is a ResourceNotFoundException.
 */
import type { EbsApi } from '../ebs/api.js';
import { sha256Owned } from '../ebs/checksum.js';
import { BLOCK_SIZE } from '../ebs/constants.js';
import { EbsError, retryKind } from '../ebs/errors.js';
import type { RequestLimiter } from '../ebs/limiter.js';
import { READ_RETRY, withRetry, type RetryEvent, type RetryPolicy } from '../ebs/retry.js';

export interface TokenRefresher {
  /** A fresh token for `index`, given the one that just failed. */
  refresh(index: number, staleToken: string): Promise<string>;
}

export interface ListingTokenRefresherOptions {
  limiter?: RequestLimiter;
  policy?: RetryPolicy;
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Blocks per re-list (100–10,000); default 1,000. */
  pageSize?: number;
}

export class ListingTokenRefresher implements TokenRefresher {
  private fresh = new Map<number, string>();
  private inflight = new Map<number, Promise<Map<number, string>>>();
  /** Number of list calls made (for tests and stats). */
  listCalls = 0;

  constructor(
    private readonly api: EbsApi,
    private readonly snapshotId: string,
    private readonly opts: ListingTokenRefresherOptions = {},
  ) {}

  async refresh(index: number, staleToken: string): Promise<string> {
    const known = this.fresh.get(index);
    if (known !== undefined && known !== staleToken) return known;
    let p = this.inflight.get(index);
    if (!p) {
      p = this.relist(index).finally(() => this.inflight.delete(index));
      this.inflight.set(index, p);
    }
    const map = await p;
    const token = map.get(index);
    if (token === undefined) {
      throw new EbsError('ResourceNotFoundException', `block ${index} is no longer listed in snapshot ${this.snapshotId}`, { status: 404 });
    }
    return token;
  }

  private async relist(index: number): Promise<Map<number, string>> {
    const page = await withRetry(
      () => {
        this.listCalls++;
        const fn = () => this.api.listSnapshotBlocks(this.snapshotId, {
          startingBlockIndex: index,
          maxResults: this.opts.pageSize ?? 1_000,
          signal: this.opts.signal,
        });
        return this.opts.limiter ? this.opts.limiter.run(fn) : fn();
      },
      { policy: this.opts.policy ?? READ_RETRY, classify: (e) => retryKind(e), signal: this.opts.signal, sleep: this.opts.sleep },
    );
    const map = new Map<number, string>();
    for (const b of page.blocks) map.set(b.index, b.token);
    this.fresh = map;
    return map;
  }
}

export interface FetchOptions {
  api: EbsApi;
  snapshotId: string;
  index: number;
  token: string;
  refresher?: TokenRefresher;
  limiter?: RequestLimiter;
  policy?: RetryPolicy;
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  onRetry?: (event: RetryEvent) => void;
}

export interface VerifiedBlock {
  data: Buffer;
  checksum: string;
}

export async function fetchVerifiedBlock(opts: FetchOptions): Promise<VerifiedBlock> {
  let token = opts.token;
  return withRetry(
    async () => {
      const fn = () => opts.api.getSnapshotBlock(opts.snapshotId, opts.index, token, { signal: opts.signal });
      const r = await (opts.limiter ? opts.limiter.run(fn) : fn());
      if (r.dataLength !== BLOCK_SIZE || r.data.length !== BLOCK_SIZE) {
        throw new EbsError('ChecksumMismatch', `block ${opts.index}: ${r.data.length} bytes (DataLength ${r.dataLength}), expected ${BLOCK_SIZE}`);
      }
      // Off the main thread (moved to a hash worker and back): the other transfers keep going.
      const h = await sha256Owned(r.data);
      const actual = h.digest.toString('base64');
      if (actual !== r.checksum) {
        throw new EbsError('ChecksumMismatch', `block ${opts.index}: SHA-256 of the data does not match the response checksum`);
      }
      return { data: h.data, checksum: actual };
    },
    {
      policy: opts.policy ?? READ_RETRY,
      classify: (err) => {
        const kind = retryKind(err);
        return kind === 'token' && !opts.refresher ? 'fatal' : kind;
      },
      signal: opts.signal,
      sleep: opts.sleep,
      onRetry: opts.onRetry,
      beforeRetry: async (kind) => {
        if (kind === 'token' && opts.refresher) token = await opts.refresher.refresh(opts.index, token);
      },
    },
  );
}
