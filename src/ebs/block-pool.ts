/**
 * BlockPool: reusable 512 KiB buffers for block bodies on the client (GetSnapshotBlock responses
 * land in one, the cache holds it, and gives it back when it evicts the block), so the hot path
 * allocates no block per request and the GC has no 512 KiB garbage to collect.
 *
 * Contract:
 * - `take()` returns a buffer of exactly BLOCK_SIZE bytes, arbitrary contents, that owns its whole
 *   ArrayBuffer (so it can be moved to a hash worker and back, hash-workers.ts). The caller owns
 *   it until `give()`.
 * - `give(buf)` hands a buffer back; the giver promises nothing else holds it (the cache's blocks:
 *   each is the one copy the fetch made). Only whole, unshared 512 KiB buffers are kept, at most
 *   `maxIdle` of them; anything else is left to the GC, as are buffers marked with `keepOut`.
 * - `defaultBlockPool()` is the process's pool: the lean client fills its buffers, the cache
 *   gives them back on eviction (open-volume.ts wires both).
 */
import { BLOCK_SIZE } from './constants.js';

export class BlockPool {
  private readonly idle: Buffer[] = [];
  private readonly kept = new WeakSet<ArrayBufferLike>();
  /** Buffers handed out, and how many of those were reused (for tests and the bench). */
  taken = 0;
  reused = 0;

  constructor(readonly maxIdle = 128) {}

  take(): Buffer {
    this.taken++;
    const b = this.idle.pop();
    if (b) {
      this.reused++;
      return b;
    }
    return Buffer.allocUnsafeSlow(BLOCK_SIZE);
  }

  /** True when the pool would keep `buf`: a whole, unshared block buffer. */
  static fits(buf: Buffer): boolean {
    return buf.byteOffset === 0 && buf.length === BLOCK_SIZE && buf.buffer.byteLength === BLOCK_SIZE && !(buf.buffer instanceof SharedArrayBuffer);
  }

  /** Never take `buf` back: something else (a background disk write) may still read it. */
  keepOut(buf: Buffer): void {
    this.kept.add(buf.buffer);
  }

  give(buf: Buffer): void {
    if (this.kept.has(buf.buffer)) return;
    if (this.idle.length < this.maxIdle && BlockPool.fits(buf) && !this.idle.includes(buf)) this.idle.push(buf);
  }

  get idleCount(): number {
    return this.idle.length;
  }
}

let shared: BlockPool | undefined;

export function defaultBlockPool(): BlockPool {
  return (shared ??= new BlockPool());
}
