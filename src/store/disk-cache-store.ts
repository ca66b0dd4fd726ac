/**
 * DiskCacheStore: the BlockReader of one snapshot over a shared DiskCache: a block the cache
 * holds for this snapshot is read from local disk (verified there) with no request; any other
 * read goes to the reader below (LineageStore or SnapshotStore).
 *
 * Contract:
 * - readBlock(i): the cache's verified entry for (snapshot, i), else `source.readBlock(i)`.
 *   Blocks known to read as zeros are never looked up (CacheStore asks `isKnownZero` first).
 * - `store(i, data, sha256)` records a block verified below (SnapshotStore's onVerified hook,
 *   LineageStore's hits); it writes in the background and never fails a read.
 * - `peek(i)`: the cached block, else the source's `peek` (a lineage hit), else null; never a
 *   request (export uses it).
 * - Stats: disk.hit (served from disk), disk.miss, disk.corrupt (an entry failed verification,
 *   was dropped and the block refetched), disk.stored, disk.skipped (not stored: too many writes
 *   pending, or no room left beside blobs being written).
 */
import type { Priority } from '../ebs/limiter.js';
import { StatKey, type Stats } from '../util/stats.js';
import type { ReadBlockOptions } from './block-store.js';
import type { CacheSource } from './cache-store.js';
import type { CachedBlock, DiskCache } from './disk-cache.js';

/** A reader that can also answer without a request (from local data only). */
export interface PeekableSource extends CacheSource {
  peek?(index: number, priority?: Priority): Promise<{ data: Buffer; sha256?: Buffer } | null>;
}

export interface DiskCacheStoreOptions {
  cache: DiskCache;
  snapshotId: string;
  volumeSizeGiB: number;
  source: PeekableSource;
  stats: Stats;
}

export class DiskCacheStore implements PeekableSource {
  readonly snapshotKey: number;
  private readonly cache: DiskCache;
  private readonly source: PeekableSource;
  private readonly stats: Stats;
  /** Background writes in progress (tests wait on them). */
  private readonly writes = new Set<Promise<unknown>>();

  constructor(opts: DiskCacheStoreOptions) {
    this.cache = opts.cache;
    this.source = opts.source;
    this.stats = opts.stats;
    this.snapshotKey = opts.cache.snapshotKey(opts.snapshotId, opts.volumeSizeGiB);
  }

  isKnownZero(index: number): boolean {
    return this.source.isKnownZero?.(index) ?? false;
  }

  async readBlock(index: number, opts: ReadBlockOptions = {}): Promise<Buffer | null> {
    const hit = await this.cache.get(this.snapshotKey, index, opts.priority ?? 'demand', this.stats);
    if (hit) {
      this.stats.inc(StatKey.diskHit);
      return hit.data;
    }
    this.stats.inc(StatKey.diskMiss);
    return this.source.readBlock(index, opts);
  }

  /** This snapshot's cached block, else what the source knows locally (a lineage hit); null otherwise. */
  async peek(index: number, priority: Priority = 'demand'): Promise<{ data: Buffer; sha256?: Buffer } | null> {
    const own = await this.cache.get(this.snapshotKey, index, priority, this.stats);
    if (own) {
      this.stats.inc(StatKey.diskHit);
      return own;
    }
    return (await this.source.peek?.(index, priority)) ?? null;
  }

  /** This snapshot's cached block only (what a lineage child asks of its base). */
  peekOwn(index: number, priority: Priority = 'demand'): Promise<CachedBlock | null> {
    return this.cache.get(this.snapshotKey, index, priority, this.stats);
  }

  /** Records a verified block (raw SHA-256 `sha256`) in the background. */
  store(index: number, data: Buffer, sha256: Buffer): void {
    const p = this.cache.put(this.snapshotKey, index, data, sha256).then((r) => {
      if (r === 'stored' || r === 'linked') this.stats.inc(StatKey.diskStored);
      else this.stats.inc(StatKey.diskSkipped);
    });
    this.writes.add(p);
    void p.finally(() => this.writes.delete(p));
  }

  /** Records that block `index` has the content of a cached blob (a lineage hit): no write. */
  link(index: number, sha256: Buffer): void {
    if (this.cache.link(this.snapshotKey, index, sha256)) this.stats.inc(StatKey.diskStored);
  }

  /** Resolves when the background writes started so far are done. */
  async settled(): Promise<void> {
    while (this.writes.size) await Promise.all([...this.writes]);
  }
}
