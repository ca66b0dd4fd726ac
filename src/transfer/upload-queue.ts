/**
 * BlockUploader: the write side of one pending snapshot — PutSnapshotBlock with retries, the
 * LINEAR checksum, and CompleteSnapshot.
 *
 * Contract:
 * - `put(index, data)` sends one full 524,288-byte block with its SHA-256, through the optional
 *   limiter, retried per `policy` (default WRITE_RETRY) classified with
 *   retryKind(err, {afterStart: true}): throttling, 5xx, resets, and "snapshot does not exist"
 *   during the first ~2 minutes of a new snapshot are retried; anything else rejects.
 *   Putting the same index twice is allowed (idempotent on the service) and counted once.
 * - `complete()` sends ChangedBlocksCount (distinct blocks put) and the LINEAR checksum of every
 *   block put, retried the same way. If a retried CompleteSnapshot finds the snapshot no longer
 *   pending (the first attempt took effect but its answer was lost), a one-page listing decides:
 *   listable means completed. Resolves with the status; 'error' is the caller's to report.
 * - Callers bound concurrency (runWorkers / limiter); this class holds no block data.
 */
import type { EbsApi, SnapshotStatus } from '../ebs/api.js';
import { LinearChecksum, blockChecksum } from '../ebs/checksum.js';
import { BLOCK_SIZE, MIN_LIST_RESULTS } from '../ebs/constants.js';
import { EbsError, Reason, retryKind } from '../ebs/errors.js';
import type { RequestLimiter } from '../ebs/limiter.js';
import { WRITE_RETRY, withRetry, type RetryEvent, type RetryPolicy } from '../ebs/retry.js';

export interface BlockUploaderOptions {
  api: EbsApi;
  snapshotId: string;
  policy?: RetryPolicy;
  limiter?: RequestLimiter;
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  onRetry?: (event: RetryEvent & { op: 'put' | 'complete'; index?: number }) => void;
  /** Blocks expected in all, for the x-amz-Progress percentage. */
  expectedBlocks?: number;
}

export class BlockUploader {
  private readonly linear = new LinearChecksum();
  private retries = 0;

  constructor(private readonly opts: BlockUploaderOptions) {}

  get snapshotId(): string {
    return this.opts.snapshotId;
  }

  /** Distinct blocks put so far. */
  get count(): number {
    return this.linear.count;
  }

  get retryCount(): number {
    return this.retries;
  }

  async put(index: number, data: Buffer, checksum = blockChecksum(data)): Promise<void> {
    if (data.length !== BLOCK_SIZE) throw new RangeError(`block ${index} is ${data.length} bytes, not ${BLOCK_SIZE}`);
    const { api, snapshotId, limiter, signal, expectedBlocks } = this.opts;
    const progress = expectedBlocks ? Math.min(100, Math.floor((this.count * 100) / expectedBlocks)) : undefined;
    await withRetry(
      () => {
        const fn = () => api.putSnapshotBlock(snapshotId, index, data, checksum, { progress, signal });
        return limiter ? limiter.run(fn) : fn();
      },
      {
        policy: this.opts.policy ?? WRITE_RETRY,
        classify: (err) => retryKind(err, { afterStart: true }),
        signal,
        sleep: this.opts.sleep,
        onRetry: (e) => {
          this.retries++;
          this.opts.onRetry?.({ ...e, op: 'put', index });
        },
      },
    );
    this.linear.add(index, checksum);
  }

  /** The LINEAR checksum of the blocks put so far. */
  linearChecksum(): string {
    return this.linear.digest();
  }

  async complete(): Promise<SnapshotStatus> {
    const { api, snapshotId, signal } = this.opts;
    const count = this.linear.count;
    const linearChecksum = this.linear.digest();
    let attempts = 0;
    try {
      const r = await withRetry(
        () => {
          attempts++;
          return api.completeSnapshot(snapshotId, count, { linearChecksum, signal });
        },
        {
          policy: this.opts.policy ?? WRITE_RETRY,
          classify: (err) => retryKind(err, { afterStart: true }),
          signal,
          sleep: this.opts.sleep,
          onRetry: (e) => {
            this.retries++;
            this.opts.onRetry?.({ ...e, op: 'complete' });
          },
        },
      );
      return r.status;
    } catch (err) {
      if (attempts > 1 && err instanceof EbsError && err.type === 'ValidationException' && err.reason === Reason.SNAPSHOT_NOT_PENDING) {
        try {
          await api.listSnapshotBlocks(snapshotId, { maxResults: MIN_LIST_RESULTS, signal });
          return 'completed';
        } catch {
          // Not listable: report the original failure.
        }
      }
      throw err;
    }
  }
}
