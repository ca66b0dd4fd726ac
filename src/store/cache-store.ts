/**
 * CacheStore: a BlockReader that keeps clean 512 KiB blocks of the reader below in an LRU bounded
 * in bytes, and fetches ahead for the Prefetcher.
 *
 * Contract:
 * - Bytes held by cached blocks never exceed `cacheSizeBytes` (lru-cache maxSize). Blocks known
 *   to read as zeros are never stored nor fetched: readBlock resolves null.
 * - Blocks being fetched are memory too, about twice over (the body, plus the socket chunks it
 *   was read from until the next GC, or the hash job's copy): a large cache keeps
 *   `inFlightReserveBlocks` (twice the prefetch slots plus a few demand reads, at most an eighth of
 *   the cache) free for them, so cached plus in-flight blocks stay within `cacheSizeBytes` and the
 *   daemon's RSS within cache + overhead.
 * - Single flight: concurrent reads of one block share one request, whether demand or prefetch.
 * - Deadlines: a read's `signal` ends its own wait (IoError-free: it rejects with the signal's
 *   reason; the layer above answers). The shared fetch is abandoned (its queued request dropped,
 *   its retries stopped) only once every reader waiting for it has aborted; a prefetch never is.
 *   A fetch already sent still fills the cache.
 * - `prefetch(index)` queues a background fetch that fills the cache: a no-op when the block is
 *   cached, in flight, queued or known zero; refused ('full') when `prefetchBudgetBlocks` fetches
 *   are already outstanding. At most `backgroundConcurrency` prefetches run at once (below the
 *   limiter's maxConcurrency, so demand reads always find slots), and a demand read of a block
 *   still queued for prefetch takes it over at demand priority instead of waiting behind others.
 * - Stats: cache.hit (served from memory), cache.miss (had to wait for the reader below),
 *   prefetch.issued, prefetch.hit (a demand read served by a block the prefetcher fetched; each
 *   prefetched block counts once), blocks.zero (known-zero fast path).
 * - Hot path (hit): one LRU get, no hashing, no allocation beyond the resolved promise.
 * - Buffers: a block the LRU evicts (or drops at close) goes back to `pool` (BlockPool) for the
 *   next fetch to land in: each cached buffer is the one copy its fetch made, held by nobody else. Safe
 *   because every reader copies a block in the continuation of the promise that delivered it
 *   (VolumeFile, OverlayStore): a microtask of the same turn, while a reused buffer is written
 *   only by socket data, in a later turn of the event loop.
 */
import { LRUCache } from 'lru-cache';
import { defaultBlockPool, type BlockPool } from '../ebs/block-pool.js';
import { BLOCK_SIZE } from '../ebs/constants.js';
import { raceSignal, WaiterSignal } from '../util/abort.js';
import { silentLogger, type Logger } from '../util/log.js';
import { StatKey, type Stats } from '../util/stats.js';
import type { BlockReader, ReadBlockOptions } from './block-store.js';
import type { BlockLru } from './shared-memory-cache.js';

/** The reader below, optionally able to tell known-zero blocks without I/O. */
export interface CacheSource extends BlockReader {
  isKnownZero?(index: number): boolean;
}

export type PrefetchResult = 'issued' | 'present' | 'full';

export interface CacheStoreOptions {
  source: CacheSource;
  cacheSizeBytes: number;
  stats: Stats;
  /** Most prefetches running at once. Default 16. */
  backgroundConcurrency?: number;
  /** Most prefetches queued or running. Default: a quarter of the cache, in blocks. */
  prefetchBudgetBlocks?: number;
  /**
   * Cache space kept free for blocks in flight. Default: 2 × (backgroundConcurrency + 4) blocks,
   * at most an eighth of the cache (so a small cache keeps most of its blocks).
   */
  inFlightReserveBlocks?: number;
  /** Where evicted blocks go (default: the process's BlockPool). */
  pool?: BlockPool;
  logger?: Logger;
  /** A part of a cache shared with other volumes (SharedMemoryCache.view), instead of an own LRU. */
  sharedLru?: (onDispose: (index: number) => void) => BlockLru;
}

interface InFlight {
  promise: Promise<Buffer | null>;
  /** Aborts when every reader waiting for this fetch has given up. */
  waiters: WaiterSignal;
  prefetch: boolean;
  /** A demand read already joined this prefetch (and counted its prefetch.hit). */
  claimed: boolean;
}

export class CacheStore implements BlockReader {
  readonly cacheSizeBytes: number;
  readonly prefetchBudgetBlocks: number;
  private readonly source: CacheSource;
  private readonly stats: Stats;
  private readonly logger: Logger;
  private readonly lru: BlockLru | undefined;
  private readonly inFlight = new Map<number, InFlight>();
  /** Prefetches not started yet, in FIFO order. */
  private readonly queued = new Set<number>();
  /** Cached blocks that were prefetched and not yet read on demand. */
  private readonly prefetchedUnread = new Set<number>();
  private backgroundConcurrency: number;
  private backgroundRunning = 0;
  private closed = false;

  constructor(opts: CacheStoreOptions) {
    this.source = opts.source;
    this.stats = opts.stats;
    this.logger = opts.logger ?? silentLogger;
    this.cacheSizeBytes = Math.max(0, opts.cacheSizeBytes);
    const cacheBlocks = Math.floor(this.cacheSizeBytes / BLOCK_SIZE);
    this.prefetchBudgetBlocks = Math.max(0, opts.prefetchBudgetBlocks ?? Math.floor(cacheBlocks / 4));
    this.backgroundConcurrency = Math.max(0, opts.backgroundConcurrency ?? 16);
    const pool = opts.pool ?? defaultBlockPool();
    const reserveBlocks = Math.max(0, Math.min(opts.inFlightReserveBlocks ?? 2 * (this.backgroundConcurrency + 4), Math.floor(cacheBlocks / 8)));
    this.lru = opts.sharedLru
      ? opts.sharedLru((index) => this.prefetchedUnread.delete(index))
      : cacheBlocks > 0
        ? new LRUCache<number, Buffer>({
            maxSize: this.cacheSizeBytes - reserveBlocks * BLOCK_SIZE,
            sizeCalculation: (buf) => buf.length,
            dispose: (buf, index) => {
              this.prefetchedUnread.delete(index);
              pool.give(buf);
            },
          })
        : undefined;
  }

  /** Bytes currently held by cached blocks (≤ cacheSizeBytes). */
  get cachedBytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  /** Most blocks the LRU keeps (the cache size less the in-flight reserve). */
  get capacityBlocks(): number {
    return Math.floor((this.lru?.maxSize ?? 0) / BLOCK_SIZE);
  }

  get cachedBlocks(): number {
    return this.lru?.size ?? 0;
  }

  /** Prefetches queued or running. */
  get prefetchOutstanding(): number {
    return this.queued.size + this.backgroundRunning;
  }

  /** True when reading the block needs no request: cached, or known to read as zeros. */
  has(index: number): boolean {
    return (this.lru?.has(index) ?? false) || (this.source.isKnownZero?.(index) ?? false);
  }

  isInFlight(index: number): boolean {
    return this.inFlight.has(index) || this.queued.has(index);
  }

  setBackgroundConcurrency(n: number): void {
    this.backgroundConcurrency = Math.max(0, n);
    this.pump();
  }

  readBlock(index: number, opts: ReadBlockOptions = {}): Promise<Buffer | null> {
    const cached = this.lru?.get(index);
    if (cached !== undefined) {
      this.stats.inc(StatKey.cacheHit);
      if (this.prefetchedUnread.delete(index)) this.stats.inc(StatKey.prefetchHit);
      return Promise.resolve(cached);
    }
    if (this.source.isKnownZero?.(index)) {
      this.stats.inc(StatKey.blocksZero);
      return Promise.resolve(null);
    }
    this.stats.inc(StatKey.cacheMiss);
    const running = this.inFlight.get(index);
    if (running) {
      if (running.prefetch && !running.claimed) {
        running.claimed = true;
        this.stats.inc(StatKey.prefetchHit);
      }
      running.waiters.join(opts.signal);
      return raceSignal(running.promise, opts.signal);
    }
    // A demand read takes over a prefetch that has not started yet.
    this.queued.delete(index);
    return raceSignal(this.fetch(index, opts.priority ?? 'demand', false, opts.signal), opts.signal);
  }

  prefetch(index: number): PrefetchResult {
    if (this.closed || this.has(index) || this.isInFlight(index)) return 'present';
    if (this.prefetchOutstanding >= this.prefetchBudgetBlocks || this.backgroundConcurrency === 0) return 'full';
    this.queued.add(index);
    this.stats.inc(StatKey.prefetchIssued);
    this.pump();
    return 'issued';
  }

  /** Drops queued prefetches and every cached block; in-flight fetches finish uncached. */
  close(): void {
    this.closed = true;
    this.queued.clear();
    this.lru?.clear();
    this.prefetchedUnread.clear();
  }

  private pump(): void {
    while (this.backgroundRunning < this.backgroundConcurrency && this.queued.size > 0) {
      const index = this.queued.values().next().value as number;
      this.queued.delete(index);
      this.backgroundRunning++;
      const promise = this.fetch(index, 'background', true);
      promise
        .catch((err: unknown) => {
          this.logger.debug({ block: index, err: (err as Error)?.message }, 'prefetch failed');
        })
        .finally(() => {
          this.backgroundRunning--;
          this.pump();
        });
    }
  }

  private fetch(index: number, priority: 'demand' | 'background', prefetch: boolean, signal?: AbortSignal): Promise<Buffer | null> {
    const waiters = new WaiterSignal();
    const entry: InFlight = { promise: undefined as unknown as Promise<Buffer | null>, waiters, prefetch, claimed: false };
    waiters.join(prefetch ? undefined : signal);
    // Abandoned by every reader: later reads start afresh instead of joining it.
    waiters.signal.addEventListener('abort', () => this.forget(index, entry), { once: true });
    entry.promise = this.source.readBlock(index, { priority, signal: waiters.signal }).then(
      (buf) => {
        this.forget(index, entry);
        if (buf !== null && this.lru && !this.closed) {
          this.lru.set(index, buf);
          if (prefetch && !entry.claimed && this.lru.has(index)) this.prefetchedUnread.add(index);
        }
        return buf;
      },
      (err: unknown) => {
        this.forget(index, entry);
        throw err;
      },
    );
    this.inFlight.set(index, entry);
    return entry.promise;
  }

  private forget(index: number, entry: InFlight): void {
    if (this.inFlight.get(index) === entry) this.inFlight.delete(index);
  }
}
