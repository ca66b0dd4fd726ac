/**
 * openLocalLayers: the layers between the memory cache and a snapshot's SnapshotStore that
 * answer from local data: DiskCacheStore (`--disk-cache`) over LineageStore (a base snapshot of
 * the same lineage), both optional.
 *
 *   CacheStore → DiskCacheStore(C) → LineageStore(C ← P) → SnapshotStore(C)
 *
 * Contract:
 * - Neither a disk cache nor a base (nor sibling volumes): `top` is the source itself.
 * - The base is chosen by chooseLineageBase (lineage-base.ts): `--base`, else sibling volumes of
 *   the same mount, else recently used snapshots of the disk cache. Its blocks are looked up in
 *   the sibling's memory (when mounted alongside) and in the disk cache; a lineage hit is
 *   recorded in the disk cache for C as well (an index row, no data written).
 * - `store` is what SnapshotStore's onVerified calls: fetched blocks go to the disk cache.
 * - `close()` stops the changed-blocks listing (the DiskCache itself belongs to the caller).
 */
import type { EbsApi } from '../ebs/api.js';
import type { RequestLimiter } from '../ebs/limiter.js';
import type { RetryPolicy } from '../ebs/retry.js';
import type { Logger } from '../util/log.js';
import type { Stats } from '../util/stats.js';
import type { DiskCache } from './disk-cache.js';
import { DiskCacheStore, type PeekableSource } from './disk-cache-store.js';
import { chooseLineageBase } from './lineage-base.js';
import { LineageStore, type BasePeek } from './lineage-store.js';

export interface LocalLayersOptions {
  api: EbsApi;
  snapshotId: string;
  volumeSizeGiB: number;
  source: PeekableSource;
  stats: Stats;
  diskCache?: DiskCache;
  /** `--base SNAP` */
  base?: string;
  /** Other snapshots of the same mount: lineage candidates, their blocks peeked in memory. */
  siblings?: BasePeek[];
  listLimiter?: RequestLimiter;
  logger?: Logger;
  retryPolicy?: RetryPolicy;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface LocalLayers {
  top: PeekableSource;
  disk?: DiskCacheStore;
  lineage?: LineageStore;
  store(index: number, data: Buffer, sha256: Buffer): void;
  close(): void;
}

export async function openLocalLayers(opts: LocalLayersOptions): Promise<LocalLayers> {
  const { diskCache, stats } = opts;
  const siblings = opts.siblings ?? [];
  let lineage: LineageStore | undefined;
  let disk: DiskCacheStore | undefined;
  if (diskCache || opts.base || siblings.length) {
    const changes = await chooseLineageBase({
      api: opts.api,
      snapshotId: opts.snapshotId,
      volumeSizeGiB: opts.volumeSizeGiB,
      explicitBase: opts.base,
      cache: diskCache,
      extraCandidates: siblings.map((s) => s.snapshotId),
      listLimiter: opts.listLimiter,
      stats,
      logger: opts.logger,
      retryPolicy: opts.retryPolicy,
      sleep: opts.sleep,
    });
    if (changes) {
      const base = changes.baseSnapshotId;
      const bases: BasePeek[] = siblings.filter((s) => s.snapshotId === base);
      const baseKey = diskCache?.findSnapshotKey(base);
      if (diskCache && baseKey !== undefined) {
        bases.push({ snapshotId: base, peek: (i, priority) => diskCache.get(baseKey, i, priority, stats) });
      }
      lineage = new LineageStore({
        source: opts.source,
        changes,
        bases,
        stats,
        onHit: (i, block) => {
          if (block.sha256) disk?.link(i, block.sha256);
        },
      });
    }
  }
  if (diskCache) {
    disk = new DiskCacheStore({ cache: diskCache, snapshotId: opts.snapshotId, volumeSizeGiB: opts.volumeSizeGiB, source: lineage ?? opts.source, stats });
  }
  return {
    top: disk ?? lineage ?? opts.source,
    disk,
    lineage,
    store: (i, data, sha) => disk?.store(i, data, sha),
    close: () => lineage?.changes.stop(),
  };
}
