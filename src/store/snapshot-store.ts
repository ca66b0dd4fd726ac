/**
 * SnapshotStore: the bottom BlockReader of the read stack — one completed snapshot's blocks,
 * fetched with GetSnapshotBlock and verified.
 *
 * Contract:
 * - Blocks the snapshot lacks resolve to null without a GetSnapshotBlock request.
 * - Every request goes through the RequestLimiter (concurrency and rate per snapshot) at the
 *   caller's priority, inside withRetry(READ_RETRY by default): throttling, 5xx, timeouts,
 *   resets and corrupt bodies are retried with backoff; INVALID_BLOCK_TOKEN re-lists the block's
 *   segment, then retries.
 * - Every body is checked: DataLength and length 524,288 and SHA-256 equal to the response
 *   checksum, on a hash worker thread (checksum.ts: the event loop keeps serving FUSE and HTTP
 *   meanwhile). A mismatch counts `ebs.checksum.mismatch`, gives the body's buffer back to the
 *   BlockPool and is retried as a transient EbsError('ChecksumMismatch'); unverified bytes are
 *   never returned.
 * - A block that still fails rejects with IoError('EIO') for that read only (logged with the
 *   snapshot id and block index, never the token); the store stays usable.
 */
import type { EbsApi } from '../ebs/api.js';
import { defaultBlockPool } from '../ebs/block-pool.js';
import { sha256Owned } from '../ebs/checksum.js';
import { BLOCK_SIZE } from '../ebs/constants.js';
import { EbsError, retryKind } from '../ebs/errors.js';
import type { RequestLimiter } from '../ebs/limiter.js';
import { READ_RETRY, withRetry, type RetryPolicy } from '../ebs/retry.js';
import { IoError } from '../fs/io-error.js';
import { linkSignals } from '../util/abort.js';
import { silentLogger, type Logger } from '../util/log.js';
import { StatKey, type Stats } from '../util/stats.js';
import type { BlockMap } from './block-map.js';
import type { BlockReader, ReadBlockOptions } from './block-store.js';

export interface SnapshotStoreOptions {
  api: EbsApi;
  snapshotId: string;
  blockMap: BlockMap;
  limiter: RequestLimiter;
  stats: Stats;
  logger?: Logger;
  retryPolicy?: RetryPolicy;
  sleep?: (ms: number) => Promise<void>;
  /** Aborts waits and requests when the volume closes. */
  signal?: AbortSignal;
  /** Told of every block fetched and verified (raw SHA-256 = the service's checksum): the disk cache. */
  onVerified?: (index: number, data: Buffer, sha256: Buffer) => void;
}

export class SnapshotStore implements BlockReader {
  readonly snapshotId: string;
  private readonly opts: SnapshotStoreOptions;
  private readonly logger: Logger;

  constructor(opts: SnapshotStoreOptions) {
    this.opts = opts;
    this.snapshotId = opts.snapshotId;
    this.logger = opts.logger ?? silentLogger;
  }

  /** True when the block is known, without I/O, to read as zeros. */
  isKnownZero(index: number): boolean {
    return this.opts.blockMap.isKnownZero(index);
  }

  async readBlock(index: number, opts: ReadBlockOptions = {}): Promise<Buffer | null> {
    const { blockMap, stats } = this.opts;
    const priority = opts.priority ?? 'demand';
    const policy = this.opts.retryPolicy ?? READ_RETRY;
    const startedAt = Date.now();
    const opSignal = opts.signal;
    const linked = linkSignals(this.opts.signal, opSignal);
    const signal = linked.signal;
    let token: string | null = null;
    // A listing has its own retries (in the block map): its failure ends the read.
    let listingFailed = false;
    try {
      token = await blockMap.lookup(index, opSignal);
      if (token === null) {
        stats.inc(StatKey.blocksZero);
        return null;
      }
      const data = await withRetry(
        async () => {
          if (token === null) {
            try {
              token = await blockMap.lookup(index, opSignal);
            } catch (err) {
              listingFailed = true;
              throw err;
            }
            if (token === null) return null;
          }
          return this.fetchVerified(index, token, priority, opSignal);
        },
        {
          // One budget for the whole read, listing included, so it ends before the FUSE timeout.
          policy: { ...policy, budgetMs: Math.max(0, policy.budgetMs - (Date.now() - startedAt)) },
          classify: (err) => (listingFailed ? 'fatal' : retryKind(err)),
          onRetry: ({ kind }) => {
            stats.inc(StatKey.ebsGetRetries);
            if (kind === 'throttle') stats.inc(StatKey.ebsThrottles);
          },
          beforeRetry: async (kind) => {
            if (kind === 'token' && token !== null) {
              blockMap.invalidate(index, token);
              token = null;
            }
          },
          signal,
          sleep: this.opts.sleep,
        },
      );
      if (data === null) stats.inc(StatKey.blocksZero);
      else stats.inc(StatKey.blocksFetched);
      return data;
    } catch (err) {
      const e = err instanceof EbsError ? err : undefined;
      if (this.opts.signal?.aborted) throw new IoError('EIO', `volume ${this.snapshotId} is closed`, { cause: err });
      if (opSignal?.aborted) throw new IoError('EIO', `block ${index} of ${this.snapshotId}: the operation's deadline passed`, { cause: err });
      stats.inc(StatKey.ebsErrors);
      this.logger.warn(
        { snapshotId: this.snapshotId, block: index, errorType: e?.type ?? (err as Error)?.name, reason: e?.reason, status: e?.status },
        'block read failed',
      );
      throw new IoError('EIO', `cannot read block ${index} of ${this.snapshotId}: ${e?.type ?? (err as Error)?.name ?? 'error'}`, {
        cause: err,
      });
    } finally {
      linked.dispose();
    }
  }

  private async fetchVerified(index: number, token: string, priority: 'demand' | 'background', opSignal?: AbortSignal): Promise<Buffer> {
    const { api, limiter, stats, signal } = this.opts;
    const res = await limiter.run(() => {
      stats.inc(StatKey.ebsGetRequests);
      return api.getSnapshotBlock(this.snapshotId, index, token, { signal });
    }, priority, opSignal);
    let data = res.data;
    const expected = Buffer.from(res.checksum ?? '', 'base64');
    let ok =
      res.dataLength === BLOCK_SIZE &&
      data.length === BLOCK_SIZE &&
      (!res.checksumAlgorithm || res.checksumAlgorithm.toUpperCase() === 'SHA256');
    if (ok) {
      // The body is ours alone: hashed on a worker without a copy (moved there and back).
      const h = await sha256Owned(data);
      data = h.data;
      ok = h.digest.equals(expected);
    }
    if (!ok) {
      defaultBlockPool().give(data);
      stats.inc(StatKey.ebsChecksumMismatch);
      throw new EbsError('ChecksumMismatch', `block ${index} of ${this.snapshotId} failed verification`);
    }
    // A body that is a view into a larger allocation would keep all of it alive in the cache.
    const block = data.byteOffset === 0 && data.buffer.byteLength === data.length ? data : Buffer.from(data);
    if (this.opts.onVerified) {
      // The disk cache writes it in the background: never recycle this buffer (BlockPool).
      defaultBlockPool().keepOut(block);
      this.opts.onVerified(index, block, expected);
    }
    return block;
  }
}
