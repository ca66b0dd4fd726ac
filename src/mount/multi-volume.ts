/**
 * openMountVolumes: the volumes of one mount — one snapshot, or several (`ebsmount A B C MNT`)
 * served side by side by one daemon.
 *
 * Contract:
 * - Volumes open in the order given; any failure closes those already open and rethrows.
 * - Several volumes share one memory cache of `cacheSizeBytes` (SharedMemoryCache): the daemon's
 *   block memory is bounded by the option whatever the number of images.
 * - Lineage between them: each volume after the first tries the volumes opened before it as its
 *   base (the most recent first, then the disk cache's candidates: lineage-base.ts); a block that
 *   did not change is read through the base volume's own path (memory, disk cache, or one fetch
 *   that then serves both images). `--base` applies to every volume but the base itself.
 * - `imagesStatus` / `summedStats`: what `ebsmount status` shows per image and in total.
 */
import type { EbsApi } from '../ebs/api.js';
import type { DiskCache } from '../store/disk-cache.js';
import type { BasePeek } from '../store/lineage-store.js';
import { openSnapshotVolume, type OpenedVolume } from '../store/open-volume.js';
import { SharedMemoryCache } from '../store/shared-memory-cache.js';
import type { Logger } from '../util/log.js';
import type { ImageStatus } from './control-protocol.js';
import type { MountConfig } from './mount-options.js';

export async function openMountVolumes(
  api: EbsApi,
  config: MountConfig,
  opts: { logger: Logger; diskCache?: DiskCache },
): Promise<OpenedVolume[]> {
  const ids = config.snapshotIds?.length ? config.snapshotIds : [config.snapshotId];
  const memoryCache = ids.length > 1 ? new SharedMemoryCache(config.cacheSizeBytes) : undefined;
  const volumes: OpenedVolume[] = [];
  try {
    for (const id of ids) {
      const siblings: BasePeek[] = volumes.map(siblingPeek).reverse();
      volumes.push(
        await openSnapshotVolume(api, id, {
          cacheSizeBytes: config.cacheSizeBytes,
          readAheadBytes: config.readAheadBytes,
          maxConcurrency: config.maxConcurrency,
          requestRate: config.requestRate,
          logger: opts.logger.child({ snapshotId: id }),
          diskCache: opts.diskCache,
          base: config.base === id ? undefined : config.base,
          siblings,
          memoryCache,
        }),
      );
    }
  } catch (err) {
    for (const v of volumes) v.close();
    throw err;
  }
  return volumes;
}

/** A volume of the same mount as a lineage base: read through its own path. */
function siblingPeek(v: OpenedVolume): BasePeek {
  return {
    snapshotId: v.snapshotId,
    peek: async (index, priority) => {
      const data = await v.reader.readBlock(index, { priority });
      return data ? { data } : null;
    },
  };
}

export function imagesStatus(volumes: OpenedVolume[], mountpoint: string): ImageStatus[] {
  return volumes.map((v) => ({
    snapshotId: v.snapshotId,
    imagePath: `${mountpoint}/${v.snapshotId}.img`,
    volumeSizeGiB: v.volumeSizeGiB,
    allocatedBlocks: v.allocatedBlocks(),
    cachedBytes: v.cache.cachedBytes,
    lineage: v.local.lineage
      ? { base: v.local.lineage.baseSnapshotId, changedBlocks: v.local.lineage.changes.changedCount, complete: v.local.lineage.changes.complete }
      : null,
    stats: v.stats.snapshot(),
  }));
}

/** Every volume's counters added up (one volume: its own). */
export function summedStats(volumes: OpenedVolume[]): Record<string, number> {
  if (volumes.length === 1) return volumes[0]!.stats.snapshot();
  const out: Record<string, number> = {};
  for (const v of volumes) for (const [k, n] of Object.entries(v.stats.snapshot())) out[k] = (out[k] ?? 0) + n;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}
