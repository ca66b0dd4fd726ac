/**
 * importImage: uploads a raw disk image (file or block device) as a new completed snapshot.
 *
 * Contract (issue #2 item 3):
 * - VolumeSize = ceil(image size / GiB), at least 1; the tail block is padded with zeros.
 * - Without a parent, all-zero blocks are skipped. With a parent, the parent's listing is merged
 *   with the image in ascending block order (paged, never held whole): a block the parent lacks
 *   is written unless it is all zeros; a block the parent has is fetched (verified SHA-256) and
 *   written only when its checksum differs from the image block's, so an image block of zeros
 *   over parent data IS written. Over an encrypted parent (StartSnapshot answers the child with
 *   the parent's KmsKeyArn) every block the parent lacks is written, zeros included: an
 *   encrypted snapshot may read random data where it has no block (DESIGN §1). The parent's
 *   VolumeSize must be ≤ the new one.
 * - StartSnapshot gets a ClientToken derived from (real path, size, mtime, ctime, inode, parent,
 *   description, tags), so re-running an interrupted import resumes the same pending snapshot and
 *   re-running a finished one returns the same id without uploading again. Block devices (whose
 *   timestamps do not follow their content) get a fresh token per run.
 * - Up to `concurrency` blocks are processed at once (each: positional read, optional parent
 *   fetch, put), so at most ~2×concurrency blocks are in memory. Puts and parent reads retry with
 *   backoff (WRITE_RETRY / READ_RETRY); the first fatal failure stops the import.
 * - CompleteSnapshot carries ChangedBlocksCount and the LINEAR checksum. On AWS the snapshot may
 *   stay `pending` for a while after that (the direct APIs cannot poll it): the id is returned.
 * - Failures are UserErrors whose one line says which step failed and which snapshot is left
 *   pending (it moves to `error` after its Timeout).
 */
import { createHash, randomBytes } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import type { BlockRef, EbsApi, SnapshotStatus, Tag } from '../ebs/api.js';
import { blockChecksum, isAllZero } from '../ebs/checksum.js';
import { BLOCK_SIZE, GIB, MAX_VOLUME_GIB } from '../ebs/constants.js';
import { retryKind } from '../ebs/errors.js';
import { RequestLimiter } from '../ebs/limiter.js';
import { openTransferListing } from './listing.js';
import { READ_RETRY, withRetry, type RetryPolicy } from '../ebs/retry.js';
import { toUserError } from '../errors/describe-error.js';
import { UserError } from '../errors/user-error.js';
import { silentLogger, type Logger } from '../util/log.js';
import { ListingTokenRefresher, fetchVerifiedBlock } from './block-fetch.js';
import { ImageSource } from './image-source.js';
import { BlockUploader } from './upload-queue.js';
import { FIRST_CALL_RETRY } from './policies.js';
import { runWorkers } from './worker-pool.js';

export interface TransferProgress {
  bytesDone: number;
  totalBytes: number;
  blocksDone: number;
  totalBlocks: number;
  /** Blocks put (import) or fetched (export) so far. */
  blocksTransferred: number;
}

export interface ImportOptions {
  api: EbsApi;
  imagePath: string;
  parentSnapshotId?: string;
  description?: string;
  tags?: Tag[];
  /** Blocks processed at once; default 64. */
  concurrency?: number;
  /** Requests per second per snapshot (puts, parent reads); default 1,000 (the service quota). */
  ratePerSecond?: number;
  timeoutMinutes?: number;
  /** Overrides the derived ClientToken. */
  clientToken?: string;
  endpoint?: string;
  logger?: Logger;
  onProgress?: (p: TransferProgress) => void;
  writePolicy?: RetryPolicy;
  readPolicy?: RetryPolicy;
  /** Policy of the first requests (parent's first page, StartSnapshot); default FIRST_CALL_RETRY. */
  firstCallPolicy?: RetryPolicy;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

export interface ImportResult {
  snapshotId: string;
  status: SnapshotStatus;
  volumeSizeGiB: number;
  imageBytes: number;
  blocksScanned: number;
  blocksWritten: number;
  /** Parent blocks fetched to compare. */
  parentBlocksRead: number;
  /** True when the ClientToken named a snapshot an earlier run already completed. */
  alreadyCompleted: boolean;
  retries: number;
}

export const DEFAULT_CONCURRENCY = 64;

export function volumeSizeGiBFor(sizeBytes: number): number {
  return Math.max(1, Math.ceil(sizeBytes / GIB));
}

/** The idempotency token of an import: same image state and parameters, same token. */
export function importClientToken(p: {
  path: string;
  sizeBytes: number;
  mtimeMs: number;
  ctimeMs?: number;
  ino?: number;
  parentSnapshotId?: string;
  description?: string;
  tags?: Tag[];
}): string {
  const h = createHash('sha256')
    .update(JSON.stringify(['ebsmount-import-v1', p.path, p.sizeBytes, p.mtimeMs, p.ctimeMs ?? null, p.ino ?? null,
      p.parentSnapshotId ?? null, p.description ?? null, p.tags ?? []]))
    .digest('hex');
  return `ebsmount-import-${h.slice(0, 48)}`;
}

/** Ascending cursor over a snapshot's listing, advanced by the (serialised) dispatcher. */
class ListingCursor {
  private page: BlockRef[] = [];
  private pos = 0;
  private done = false;

  constructor(private readonly pages: AsyncGenerator<{ blocks: BlockRef[] }>) {}

  /** The token of block `index`, or undefined; calls must come with ascending `index`. */
  async tokenFor(index: number): Promise<string | undefined> {
    for (;;) {
      while (this.pos < this.page.length && this.page[this.pos]!.index < index) this.pos++;
      if (this.pos < this.page.length) {
        const b = this.page[this.pos]!;
        return b.index === index ? b.token : undefined;
      }
      if (this.done) return undefined;
      const r = await this.pages.next();
      if (r.done) {
        this.done = true;
        return undefined;
      }
      this.page = r.value.blocks;
      this.pos = 0;
    }
  }
}

interface Item {
  index: number;
  parentToken?: string;
}

export async function importImage(opts: ImportOptions): Promise<ImportResult> {
  const { api, parentSnapshotId } = opts;
  const logger = opts.logger ?? silentLogger;
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));
  const rate = opts.ratePerSecond ?? 1_000;
  const ctxBase = { endpoint: opts.endpoint };
  const src = await ImageSource.open(opts.imagePath);
  try {
    const sizeBytes = src.sizeBytes;
    const volumeSizeGiB = volumeSizeGiBFor(sizeBytes);
    if (volumeSizeGiB > MAX_VOLUME_GIB) {
      throw new UserError(`image ${opts.imagePath} is ${volumeSizeGiB} GiB, larger than the largest snapshot (${MAX_VOLUME_GIB} GiB)`);
    }
    const totalBlocks = src.blockCount;

    // The parent's listing: the first page before StartSnapshot (it checks the parent exists, is
    // completed and is not larger), the rest on demand as the dispatcher advances.
    let parentCursor: ListingCursor | undefined;
    if (parentSnapshotId) {
      const { first, pages } = await openTransferListing(api, parentSnapshotId, opts,
        (err) => toUserError(err, { ...ctxBase, snapshotId: parentSnapshotId, role: 'parent snapshot', op: 'read' }));
      if (first) {
        const parentGiB = first.volumeSizeGiB;
        if (parentGiB > volumeSizeGiB) {
          throw new UserError(`parent snapshot ${parentSnapshotId} is ${parentGiB} GiB, larger than the image (${volumeSizeGiB} GiB): a snapshot cannot be smaller than its parent`);
        }
        parentCursor = new ListingCursor(pages);
      }
    }

    // A block device's timestamps do not follow its content: its imports get a one-off token
    // (still idempotent across this run's own StartSnapshot retries).
    const clientToken = opts.clientToken ?? (src.info.isBlockDevice
      ? `ebsmount-import-${randomBytes(24).toString('hex')}`
      : importClientToken({
        path: await realpath(opts.imagePath),
        sizeBytes,
        mtimeMs: src.info.mtimeMs,
        ctimeMs: src.info.ctimeMs,
        ino: src.info.ino,
        parentSnapshotId,
        description: opts.description,
        tags: opts.tags,
      }));
    let started;
    try {
      started = await withRetry(
        () => api.startSnapshot({
          volumeSizeGiB,
          parentSnapshotId,
          description: opts.description,
          tags: opts.tags,
          clientToken,
          timeoutMinutes: opts.timeoutMinutes,
          signal: opts.signal,
        }),
        { policy: opts.firstCallPolicy ?? FIRST_CALL_RETRY, classify: (e) => retryKind(e), signal: opts.signal, sleep: opts.sleep },
      );
    } catch (err) {
      throw toUserError(err, parentSnapshotId
        ? { ...ctxBase, snapshotId: parentSnapshotId, role: 'parent snapshot', op: 'write' }
        : { ...ctxBase, op: 'write' });
    }
    const snapshotId = started.snapshotId;
    // The child of an encrypted parent is encrypted with its key: StartSnapshot says so.
    const parentEncrypted = parentSnapshotId !== undefined && started.kmsKeyArn !== undefined;
    logger.info({ snapshotId, volumeSizeGiB, parentSnapshotId, status: started.status }, 'import: snapshot started');
    const base = {
      snapshotId, volumeSizeGiB, imageBytes: sizeBytes, blocksScanned: 0, blocksWritten: 0, parentBlocksRead: 0, retries: 0,
    };
    if (started.status === 'completed') {
      logger.info({ snapshotId }, 'import: this image was already imported with the same parameters; returning that snapshot');
      return { ...base, status: 'completed', alreadyCompleted: true };
    }
    if (started.status === 'error') {
      throw new UserError(`an earlier import of this image with the same parameters left snapshot ${snapshotId} in state error; change the image or the --description to import again`);
    }

    const putLimiter = new RequestLimiter({ maxConcurrency: concurrency, ratePerSecond: rate });
    const getLimiter = new RequestLimiter({ maxConcurrency: concurrency, ratePerSecond: rate });
    const uploader = new BlockUploader({
      api,
      snapshotId,
      limiter: putLimiter,
      policy: opts.writePolicy,
      signal: opts.signal,
      sleep: opts.sleep,
      expectedBlocks: totalBlocks,
      onRetry: (e) => logger.debug({ snapshotId, op: e.op, index: e.index, attempt: e.attempt, kind: e.kind, delayMs: e.delayMs }, 'import: retry'),
    });
    const refresher = parentSnapshotId ? new ListingTokenRefresher(api, parentSnapshotId, { signal: opts.signal, sleep: opts.sleep }) : undefined;
    const free: Buffer[] = [];
    let nextIndex = 0;
    let blocksDone = 0;
    let bytesDone = 0;
    let parentBlocksRead = 0;
    let readRetries = 0;
    let failedStep = 'put' as 'read' | 'parent' | 'put';

    try {
      await runWorkers<Item>({
        concurrency,
        signal: opts.signal,
        next: async () => {
          if (nextIndex >= totalBlocks) return undefined;
          const index = nextIndex++;
          let parentToken: string | undefined;
          if (parentCursor) {
            try {
              parentToken = await parentCursor.tokenFor(index);
            } catch (err) {
              failedStep = 'parent';
              throw err;
            }
          }
          return { index, parentToken };
        },
        work: async (item, signal) => {
          const buf = free.pop() ?? Buffer.allocUnsafe(BLOCK_SIZE);
          try {
            let got: number;
            try {
              got = await src.readBlock(item.index, buf);
            } catch (err) {
              failedStep = 'read';
              throw err;
            }
            const zero = isAllZero(buf);
            const checksum = blockChecksum(buf);
            let write: boolean;
            if (item.parentToken === undefined) {
              // Over an encrypted parent a block it lacks may read as random data: write zeros too.
              write = !zero || parentEncrypted;
            } else {
              let parent;
              try {
                parent = await fetchVerifiedBlock({
                  api, snapshotId: parentSnapshotId!, index: item.index, token: item.parentToken, refresher,
                  limiter: getLimiter, policy: opts.readPolicy, signal, sleep: opts.sleep,
                  onRetry: (e) => {
                    readRetries++;
                    logger.debug({ snapshotId: parentSnapshotId, index: item.index, attempt: e.attempt, kind: e.kind, delayMs: e.delayMs }, 'import: parent read retry');
                  },
                });
              } catch (err) {
                failedStep = 'parent';
                throw err;
              }
              parentBlocksRead++;
              write = parent.checksum !== checksum;
            }
            if (write) {
              try {
                await uploader.put(item.index, buf, checksum);
              } catch (err) {
                failedStep = 'put';
                throw err;
              }
            }
            blocksDone++;
            bytesDone += got;
            opts.onProgress?.({ bytesDone, totalBytes: sizeBytes, blocksDone, totalBlocks, blocksTransferred: uploader.count });
          } finally {
            free.push(buf);
          }
        },
      });
    } catch (err) {
      const left = `snapshot ${snapshotId} was left pending and will move to state error after its timeout`;
      if (err instanceof UserError) throw new UserError(`${err.message}; ${left}`, err.exitCode, { cause: err });
      const ctx = failedStep === 'parent'
        ? { ...ctxBase, snapshotId: parentSnapshotId, role: 'parent snapshot', op: 'read' as const }
        : { ...ctxBase, snapshotId, role: 'new snapshot', op: 'write' as const };
      logger.error({ err, snapshotId, step: failedStep }, 'import failed');
      throw new UserError(`import failed: ${toUserError(err, ctx).message}; ${left}`, 1, { cause: err });
    }

    let status: SnapshotStatus;
    try {
      status = await uploader.complete();
    } catch (err) {
      throw new UserError(`completing snapshot ${snapshotId} failed: ${toUserError(err, { ...ctxBase, snapshotId, role: 'new snapshot', op: 'write' }).message}`, 1, { cause: err });
    }
    if (status === 'error') {
      throw new UserError(`snapshot ${snapshotId} went to state error on completion (the service rejected the block count or the checksum)`);
    }
    logger.info({ snapshotId, status, blocksWritten: uploader.count, blocksScanned: blocksDone, parentBlocksRead }, 'import: done');
    return {
      ...base,
      status,
      blocksScanned: blocksDone,
      blocksWritten: uploader.count,
      parentBlocksRead,
      alreadyCompleted: false,
      retries: uploader.retryCount + readRetries,
    };
  } finally {
    await src.close();
  }
}
