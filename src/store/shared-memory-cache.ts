/**
 * SharedMemoryCache: one LRU of verified blocks, bounded in bytes, shared by every volume of a
 * daemon (a multi-snapshot mount), so the cache size bounds the daemon's block memory whatever
 * the number of images, and a busy image may use what an idle one does not.
 *
 * Contract:
 * - `view(onDispose)` gives one volume its part: an LRU-shaped object keyed by block index
 *   (get / has / set / clear, `size` and `calculatedSize` of its own blocks, `maxSize` of the
 *   whole cache). Keys of different views never collide (volume slot × 2^27 + index; block
 *   indexes are below 2^27). `onDispose(index)` is told when one of its blocks leaves the cache.
 * - Eviction is least recently used across all views; `clear()` drops one view's blocks only.
 */
import { LRUCache } from 'lru-cache';

/** What CacheStore needs of its LRU (lru-cache's LRUCache has this shape). */
export interface BlockLru {
  get(index: number): Buffer | undefined;
  has(index: number): boolean;
  set(index: number, buf: Buffer): unknown;
  clear(): void;
  readonly size: number;
  readonly calculatedSize: number;
  readonly maxSize: number;
}

const SLOT = 2 ** 27;

interface Slot {
  onDispose: (index: number) => void;
  blocks: number;
  bytes: number;
}

export class SharedMemoryCache {
  readonly maxSize: number;
  private readonly lru: LRUCache<number, Buffer>;
  private readonly slots: Slot[] = [];

  constructor(maxSizeBytes: number) {
    this.maxSize = Math.max(1, maxSizeBytes);
    this.lru = new LRUCache<number, Buffer>({
      maxSize: this.maxSize,
      sizeCalculation: (buf) => buf.length,
      dispose: (buf, key) => {
        const slot = this.slots[Math.floor(key / SLOT)];
        if (!slot) return;
        slot.blocks--;
        slot.bytes -= buf.length;
        slot.onDispose(key % SLOT);
      },
    });
  }

  get calculatedSize(): number {
    return this.lru.calculatedSize;
  }

  view(onDispose: (index: number) => void): BlockLru {
    const n = this.slots.length;
    const slot: Slot = { onDispose, blocks: 0, bytes: 0 };
    this.slots.push(slot);
    const base = n * SLOT;
    const lru = this.lru;
    return {
      get: (index) => lru.get(base + index),
      has: (index) => lru.has(base + index),
      set: (index, buf) => {
        lru.set(base + index, buf);
        if (lru.has(base + index)) {
          slot.blocks++;
          slot.bytes += buf.length;
        }
      },
      clear: () => {
        for (const key of [...lru.keys()]) if (key >= base && key < base + SLOT) lru.delete(key);
      },
      get size() {
        return slot.blocks;
      },
      get calculatedSize() {
        return slot.bytes;
      },
      maxSize: this.maxSize,
    };
  }
}
