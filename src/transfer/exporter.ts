/**
 * exportSnapshot: downloads a completed snapshot into a sparse file or onto a block device.
 *
 * Contract:
 * - The listing is paged (never held whole) and merged in ascending order; blocks are fetched
 *   `concurrency` at a time through a RequestLimiter (default 1,000 requests/s, the per-snapshot
 *   quota), each verified (length and SHA-256, block-fetch.ts) and retried (READ_RETRY; an
 *   expired block token re-lists from that index). Unverified bytes are never written.
 * - Regular file: written as `.FILE.ebsmount-partial` (created mode 0600, a stale one or a
 *   symbolic link of that name replaced, never followed) in the same directory, sized VolumeSize GiB
 *   with ftruncate, so blocks the snapshot lacks — and listed blocks that are all zeros — stay
 *   holes; fsync, then renamed over FILE. An existing FILE is refused unless `force`; on failure
 *   the partial file is removed and FILE is untouched. FILE ends up mode 0600 (it is a disk).
 * - Block device: must be at least VolumeSize GiB; every byte of the volume range is written
 *   (zeros where the snapshot has no block, since a device has no holes); fsync at the end.
 * - Directories and other file types are refused. Errors are UserErrors (one line).
 * - At most ~concurrency blocks are in memory at once.
 * - With a disk cache (`--disk-cache`): a listed block the cache holds for this snapshot, or for
 *   a lineage base where it did not change (src/store/local-layers.ts), is written from there
 *   (verified on read) with no GetSnapshotBlock; every block fetched is stored in the cache.
 */
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { BlockRef, EbsApi } from '../ebs/api.js';
import { isAllZero } from '../ebs/checksum.js';
import { BLOCK_SIZE, GIB, blocksInVolume } from '../ebs/constants.js';
import { RequestLimiter } from '../ebs/limiter.js';
import { READ_RETRY, type RetryPolicy } from '../ebs/retry.js';
import { toUserError } from '../errors/describe-error.js';
import { UserError } from '../errors/user-error.js';
import { silentLogger, type Logger } from '../util/log.js';
import { ListingTokenRefresher, fetchVerifiedBlock } from './block-fetch.js';
import { blockDeviceSize } from './image-source.js';
import type { TransferProgress } from './importer.js';
import { openTransferListing } from './listing.js';
import { runWorkers } from './worker-pool.js';
import type { DiskCache } from '../store/disk-cache.js';
import type { PeekableSource } from '../store/disk-cache-store.js';
import { openLocalLayers } from '../store/local-layers.js';
import { Stats } from '../util/stats.js';

/** Below the local layers of an export: nothing (every miss is fetched by the export itself). */
const NO_SOURCE: PeekableSource = {
  readBlock: () => Promise.reject(new Error('export reads only local blocks through its layers')),
};

export interface ExportOptions {
  api: EbsApi;
  snapshotId: string;
  filePath: string;
  force?: boolean;
  concurrency?: number;
  ratePerSecond?: number;
  endpoint?: string;
  logger?: Logger;
  onProgress?: (p: TransferProgress) => void;
  readPolicy?: RetryPolicy;
  /** Policy of the first listing page; default FIRST_CALL_RETRY (a dead endpoint fails fast). */
  firstCallPolicy?: RetryPolicy;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
  /** `--disk-cache` (owned by the caller). */
  diskCache?: DiskCache;
  /** `--base` (with diskCache). */
  base?: string;
}

export interface ExportResult {
  snapshotId: string;
  volumeSizeGiB: number;
  target: 'file' | 'device';
  blocksListed: number;
  /** Blocks written with data (all-zero listed blocks in a file stay holes). */
  blocksWritten: number;
  zeroBlocks: number;
  retries: number;
  /** Blocks read from the disk cache (own or lineage entries) instead of GetSnapshotBlock. */
  blocksFromCache: number;
}

/** Zero writes on a device are done in pieces of this many blocks (8 MiB). */
const ZERO_CHUNK_BLOCKS = 16;

type Item = { kind: 'block'; ref: BlockRef } | { kind: 'zeros'; start: number; count: number };

async function writeFully(fh: FileHandle, data: Buffer, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await fh.write(data, done, length - done, position + done);
    if (bytesWritten === 0) throw new Error(`short write at byte ${position + done}`);
    done += bytesWritten;
  }
}

async function targetKind(path: string, force: boolean): Promise<'new' | 'file' | 'device'> {
  try {
    const st = await stat(path);
    if (st.isBlockDevice()) return 'device';
    if (st.isDirectory()) throw new UserError(`${path} is a directory (give a file name or a block device)`);
    if (!st.isFile()) throw new UserError(`${path} is not a regular file or a block device`);
    if (!force) throw new UserError(`${path} already exists (use --force to overwrite it)`);
    return 'file';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof UserError) throw err;
      throw new UserError(`cannot use ${path}: ${(err as Error).message}`);
    }
  }
  try {
    const st = await stat(dirname(path));
    if (!st.isDirectory()) throw new UserError(`${dirname(path)} is not a directory`);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`directory ${dirname(path)} does not exist`);
  }
  return 'new';
}

export async function exportSnapshot(opts: ExportOptions): Promise<ExportResult> {
  const { api, snapshotId, filePath } = opts;
  const logger = opts.logger ?? silentLogger;
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 64));
  const ctx = { endpoint: opts.endpoint, snapshotId, op: 'read' as const };
  const kind = await targetKind(filePath, Boolean(opts.force));

  const { first: firstPage, pages } = await openTransferListing(api, snapshotId, opts, (err) => toUserError(err, ctx));
  if (!firstPage) throw new UserError(`snapshot ${snapshotId}: the listing returned no page`);
  const volumeSizeGiB = firstPage.volumeSizeGiB;
  const totalBlocks = blocksInVolume(volumeSizeGiB);
  const volumeBytes = volumeSizeGiB * GIB;

  const stats = new Stats();
  const local = opts.diskCache
    ? await openLocalLayers({ api, snapshotId, volumeSizeGiB, source: NO_SOURCE, stats, diskCache: opts.diskCache, base: opts.base, logger, sleep: opts.sleep })
    : undefined;
  const isDevice = kind === 'device';
  const writePath = isDevice ? filePath : join(dirname(filePath), `.${basename(filePath)}.ebsmount-partial`);
  let fh: FileHandle;
  try {
    if (isDevice) {
      fh = await open(filePath, 'r+');
      const st = await fh.stat();
      const devBytes = await blockDeviceSize(st.rdev);
      if (devBytes < volumeBytes) {
        await fh.close();
        throw new UserError(`block device ${filePath} holds ${devBytes} bytes, less than the snapshot's ${volumeSizeGiB} GiB`);
      }
    } else {
      // A disk image is private (0600), whatever the umask. A stale partial file (or a link
      // planted in a shared directory) is removed first, and O_EXCL never follows a link.
      await unlink(writePath).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      fh = await open(writePath, 'wx', 0o600);
      await fh.chmod(0o600);
      await fh.truncate(volumeBytes);
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot open ${isDevice ? filePath : writePath} for writing: ${(err as Error).message}`);
  }
  logger.info({ snapshotId, volumeSizeGiB, target: kind }, 'export: start');

  const getLimiter = new RequestLimiter({ maxConcurrency: concurrency, ratePerSecond: opts.ratePerSecond ?? 1_000 });
  const refresher = new ListingTokenRefresher(api, snapshotId, { signal: opts.signal, sleep: opts.sleep });
  const zeroChunk = isDevice ? Buffer.alloc(ZERO_CHUNK_BLOCKS * BLOCK_SIZE) : undefined;
  const refs = (async function* () {
    for await (const p of pages) for (const b of p.blocks) yield b;
  })();
  let cursor = 0; // first block index not yet dispatched
  let pendingRef: BlockRef | undefined;
  let listingDone = false;
  let blocksListed = 0;
  let blocksWritten = 0;
  let zeroBlocks = 0;
  let blocksDone = 0;
  let bytesDone = 0;
  let retries = 0;
  let blocksFromCache = 0;
  let listFailed = false;
  const progress = (n: number) => {
    bytesDone += n;
    opts.onProgress?.({ bytesDone, totalBytes: volumeBytes, blocksDone, totalBlocks: blocksListed, blocksTransferred: blocksWritten });
  };

  const next = async (): Promise<Item | undefined> => {
    if (!pendingRef && !listingDone) {
      try {
        const r = await refs.next();
        if (r.done) listingDone = true;
        else {
          pendingRef = r.value;
          blocksListed++;
        }
      } catch (err) {
        listFailed = true;
        throw err;
      }
    }
    const gapEnd = pendingRef ? pendingRef.index : totalBlocks;
    if (cursor < gapEnd) {
      // Blocks the snapshot lacks: holes in a file, zeros on a device.
      if (!isDevice) {
        progress((gapEnd - cursor) * BLOCK_SIZE);
        cursor = gapEnd;
      } else {
        const count = Math.min(ZERO_CHUNK_BLOCKS, gapEnd - cursor);
        const item: Item = { kind: 'zeros', start: cursor, count };
        cursor += count;
        return item;
      }
    }
    if (!pendingRef) return undefined;
    const ref = pendingRef;
    pendingRef = undefined;
    if (ref.index >= totalBlocks) throw new UserError(`snapshot ${snapshotId} lists block ${ref.index} beyond its ${volumeSizeGiB} GiB volume`);
    cursor = ref.index + 1;
    return { kind: 'block', ref };
  };

  try {
    try {
      await runWorkers<Item>({
        concurrency,
        signal: opts.signal,
        next,
        work: async (item, signal) => {
          if (item.kind === 'zeros') {
            await writeFully(fh, zeroChunk!, item.count * BLOCK_SIZE, item.start * BLOCK_SIZE);
            progress(item.count * BLOCK_SIZE);
            return;
          }
          const cached = local ? await local.top.peek?.(item.ref.index, 'background') : null;
          let data: Buffer;
          if (cached) {
            data = cached.data;
            blocksFromCache++;
          } else {
            const fetched = await fetchVerifiedBlock({
              api, snapshotId, index: item.ref.index, token: item.ref.token, refresher, limiter: getLimiter,
              policy: opts.readPolicy, signal, sleep: opts.sleep,
              onRetry: (e) => {
                retries++;
                logger.debug({ snapshotId, index: item.ref.index, attempt: e.attempt, kind: e.kind, delayMs: e.delayMs }, 'export: retry');
              },
            });
            data = fetched.data;
            local?.store(item.ref.index, data, Buffer.from(fetched.checksum, 'base64'));
          }
          if (!isDevice && isAllZero(data)) {
            zeroBlocks++;
          } else {
            await writeFully(fh, data, BLOCK_SIZE, item.ref.index * BLOCK_SIZE);
            blocksWritten++;
          }
          blocksDone++;
          progress(BLOCK_SIZE);
        },
      });
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (!isDevice) await rename(writePath, filePath);
    await local?.disk?.settled();
  } catch (err) {
    local?.close();
    await local?.disk?.settled();
    if (!isDevice) await unlink(writePath).catch(() => undefined);
    logger.error({ err, snapshotId }, 'export failed');
    if (err instanceof UserError) throw err;
    const what = listFailed ? 'listing' : 'download';
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno && !('type' in (err as object))) {
      throw new UserError(`export failed writing ${filePath}: ${(err as Error).message}`, 1, { cause: err });
    }
    throw new UserError(`export failed (${what}): ${toUserError(err, ctx).message}${isDevice ? `; ${filePath} is partly written` : ''}`, 1, { cause: err });
  }
  local?.close();
  logger.info({ snapshotId, blocksListed, blocksWritten, zeroBlocks, retries, blocksFromCache, stats: stats.snapshot() }, 'export: done');
  return { snapshotId, volumeSizeGiB, target: isDevice ? 'device' : 'file', blocksListed, blocksWritten, zeroBlocks, retries, blocksFromCache };
}
