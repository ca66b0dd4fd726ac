/**
 * openSnapshotVolume: wires the read stack of one completed snapshot —
 * BlockMap → SnapshotStore → CacheStore (+ Prefetcher) — behind one RequestLimiter, and starts
 * the background count of allocated blocks.
 *
 * Contract:
 * - Opening costs one ListSnapshotBlocks call (from index 0, MaxResults 10,000), whatever the
 *   volume size: it learns VolumeSize, seeds the block map and the count, and surfaces errors
 *   early. Those (not found, not completed, access denied, credentials, unreachable) are thrown
 *   as the EbsError the API gave, after a short retry for transient ones.
 * - GetSnapshotBlock: at most `maxConcurrency` in flight and `requestRate` per second; prefetches
 *   use at most maxConcurrency − max(2, maxConcurrency/16) of them, so demand reads always have
 *   slots. List calls have their own limiter (the service allows 50/s); the count scan lists at
 *   background priority behind demand segment loads.
 * - `allocatedBlocks()` is the count known so far (final once the scan is done); st_blocks is
 *   that × 1024 (512-byte units per 512 KiB block). `close()` stops the scan, drops the cache and
 *   aborts retries in progress.
 */
import { setMaxListeners } from 'node:events';
import type { EbsApi } from '../ebs/api.js';
import { BLOCK_SIZE, GIB, MAX_LIST_RESULTS } from '../ebs/constants.js';
import { EbsError, retryKind } from '../ebs/errors.js';
import { RequestLimiter } from '../ebs/limiter.js';
import { withRetry, type RetryPolicy } from '../ebs/retry.js';
import { VolumeFile } from '../fs/volume-file.js';
import { DEFAULT_READ_AHEAD_BYTES, Prefetcher } from '../prefetch/prefetcher.js';
import type { Logger } from '../util/log.js';
import { Stats } from '../util/stats.js';
import { StatKey } from '../util/stats.js';
import { AllocatedBlockCounter } from './block-counter.js';
import { BlockMap, coveredByPage } from './block-map.js';
import type { BlockReader, BlockWriter } from './block-store.js';
import { CacheStore } from './cache-store.js';
import type { DiskCache } from './disk-cache.js';
import type { BasePeek } from './lineage-store.js';
import { openLocalLayers, type LocalLayers } from './local-layers.js';
import type { SharedMemoryCache } from './shared-memory-cache.js';
import { SnapshotStore } from './snapshot-store.js';

export interface VolumeOptions {
  /** default 512 MiB */
  cacheSizeBytes: number;
  /** default 32 MiB */
  readAheadBytes: number;
  /** default 64 */
  maxConcurrency: number;
  /** GetSnapshotBlock requests per second, default 1000 (the per-snapshot quota) */
  requestRate: number;
  logger?: Logger;
  /** `--disk-cache`: the shared persistent cache (owned by the caller). */
  diskCache?: DiskCache;
  /** `--base`: the lineage base whose local blocks C may use. */
  base?: string;
  /** Other volumes of the same mount (lineage candidates and bases). */
  siblings?: BasePeek[];
  /** The memory cache shared by the volumes of one mount (cacheSizeBytes then sizes prefetching only). */
  memoryCache?: SharedMemoryCache;
}

export const DEFAULT_VOLUME_OPTIONS: Readonly<VolumeOptions> = {
  cacheSizeBytes: 512 * 1024 * 1024,
  readAheadBytes: DEFAULT_READ_AHEAD_BYTES,
  maxConcurrency: 64,
  requestRate: 1000,
};

/** Knobs for tests and experiments; production uses the defaults. */
export interface VolumeTuning {
  stats?: Stats;
  /** Retry of GetSnapshotBlock and of block-map listings (default READ_RETRY). */
  retryPolicy?: RetryPolicy;
  /** Retry of the opening list call (default: short, so a bad endpoint fails fast). */
  openRetryPolicy?: RetryPolicy;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  segmentBlocks?: number;
  maxSegments?: number;
  /** Count allocated blocks in the background (default true). */
  backgroundCount?: boolean;
  listConcurrency?: number;
  listRate?: number;
}

export const OPEN_RETRY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 200, maxDelayMs: 2_000, budgetMs: 10_000 };

export interface OpenedVolume {
  volumeSizeGiB: number;
  sizeBytes: number;
  snapshotId: string;
  /** cache+prefetch path */
  reader: BlockReader;
  snapshot: SnapshotStore;
  cache: CacheStore;
  prefetcher: Prefetcher;
  /** Disk cache and lineage layers (absent layers: undefined). */
  local: LocalLayers;
  blockMap: BlockMap;
  counter: AllocatedBlockCounter;
  stats: Stats;
  limiter: RequestLimiter;
  allocatedBlocks(): number;
  close(): void;
}

/** Prefetch slots: below maxConcurrency so demand reads always find one. */
export function backgroundSlots(maxConcurrency: number): number {
  return Math.max(1, maxConcurrency - Math.max(2, Math.ceil(maxConcurrency / 16)));
}

export async function openSnapshotVolume(
  api: EbsApi,
  snapshotId: string,
  options: Partial<VolumeOptions> & VolumeTuning = {},
): Promise<OpenedVolume> {
  const opts = { ...DEFAULT_VOLUME_OPTIONS, ...stripUndefined(options) };
  const stats = opts.stats ?? new Stats();
  const listLimiter = new RequestLimiter({ maxConcurrency: opts.listConcurrency ?? 4, ratePerSecond: opts.listRate ?? 40 });
  listLimiter.setBackgroundCap(1);

  const firstPage = await withRetry(
    () => {
      stats.inc(StatKey.ebsListRequests);
      return api.listSnapshotBlocks(snapshotId, { startingBlockIndex: 0, maxResults: MAX_LIST_RESULTS });
    },
    { policy: opts.openRetryPolicy ?? OPEN_RETRY, classify: (err) => retryKind(err), sleep: opts.sleep },
  );
  if (firstPage.blockSize !== BLOCK_SIZE) {
    throw new EbsError('UnknownError', `snapshot ${snapshotId} has block size ${firstPage.blockSize}, expected ${BLOCK_SIZE}`);
  }
  const volumeSizeGiB = firstPage.volumeSizeGiB;
  const abort = new AbortController();
  // Every request in flight listens on this signal (the SDK adds one listener per request).
  setMaxListeners(0, abort.signal);
  const limiter = new RequestLimiter({ maxConcurrency: opts.maxConcurrency, ratePerSecond: opts.requestRate });
  const prefetchSlots = backgroundSlots(opts.maxConcurrency);
  limiter.setBackgroundCap(prefetchSlots);

  const blockMap = new BlockMap({
    api,
    snapshotId,
    volumeSizeGiB,
    stats,
    listLimiter,
    logger: opts.logger,
    segmentBlocks: opts.segmentBlocks,
    maxSegments: opts.maxSegments,
    retryPolicy: opts.retryPolicy,
    sleep: opts.sleep,
    now: opts.now,
    signal: abort.signal,
  });
  const first = coveredByPage(0, firstPage, blockMap.totalBlocks);
  if (first.range) blockMap.ingest(first.range, 0);

  let local: LocalLayers | undefined;
  const snapshot = new SnapshotStore({
    onVerified: (index, data, sha256) => local?.store(index, data, sha256),
    api,
    snapshotId,
    blockMap,
    limiter,
    stats,
    logger: opts.logger,
    retryPolicy: opts.retryPolicy,
    sleep: opts.sleep,
    signal: abort.signal,
  });
  try {
    local = await openLocalLayers({
      api,
      snapshotId,
      volumeSizeGiB,
      source: snapshot,
      stats,
      diskCache: opts.diskCache,
      base: opts.base,
      siblings: opts.siblings,
      listLimiter,
      logger: opts.logger,
      retryPolicy: opts.retryPolicy,
      sleep: opts.sleep,
    });
  } catch (err) {
    abort.abort();
    throw err;
  }
  const cache = new CacheStore({
    source: local.top,
    sharedLru: opts.memoryCache ? (onDispose) => opts.memoryCache!.view(onDispose) : undefined,
    cacheSizeBytes: opts.cacheSizeBytes,
    stats,
    backgroundConcurrency: prefetchSlots,
    logger: opts.logger,
  });
  const prefetcher = new Prefetcher({ cache, totalBlocks: blockMap.totalBlocks, readAheadBytes: opts.readAheadBytes });
  const counter = new AllocatedBlockCounter({
    api,
    snapshotId,
    volumeSizeGiB,
    listLimiter,
    stats,
    logger: opts.logger,
    retryPolicy: opts.retryPolicy,
    sleep: opts.sleep,
    onRange: (range) => blockMap.noteEmpty(range),
  });
  if (opts.backgroundCount !== false) {
    counter.start({ range: first.range, cursor: first.cursor, nextToken: firstPage.nextToken });
  } else {
    counter.count = first.range?.blocks.length ?? 0;
  }

  return {
    volumeSizeGiB,
    sizeBytes: volumeSizeGiB * GIB,
    snapshotId,
    reader: cache,
    snapshot,
    cache,
    prefetcher,
    local,
    blockMap,
    counter,
    stats,
    limiter,
    allocatedBlocks: () => counter.count,
    close: () => {
      counter.stop();
      local?.close();
      prefetcher.close();
      cache.close();
      abort.abort();
    },
  };
}

/**
 * The VolumeFile of an opened volume, with the prefetcher as read observer. A writable volume
 * passes its writer and the reader that overlays its dirty blocks on `opened.reader`.
 */
export function makeVolumeFile(opened: OpenedVolume, writer?: BlockWriter, reader: BlockReader = opened.reader): VolumeFile {
  return new VolumeFile({
    sizeBytes: opened.sizeBytes,
    reader,
    writer,
    observer: opened.prefetcher,
    stats: opened.stats,
    allocatedBlocks: () => opened.allocatedBlocks(),
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
