/**
 * BlockPool: reusable 512 KiB buffers for block bodies on the client (GetSnapshotBlock responses
 * land in one, the cache holds it, and gives it back when it evicts the block), so the hot path
 * allocates no block per request and the GC has no 512 KiB garbage to collect.
 *
 * Contract:
 * - `take()` returns a buffer of exactly BLOCK_SIZE bytes, arbitrary contents, that owns its whole
 *   ArrayBuffer (byteOffset 0), owned by the caller until `give()`.
 * - `give(buf)` hands a buffer back; the giver promises nothing reads or writes it any more.
 *   Buffers of another size or that are views are ignored (left to the GC), as are buffers beyond
 *   `maxIdle` (the pool never holds more than that many idle blocks).
 * - `giveLater(buf)` returns it only after `graceMs`: for buffers that a reader may still be
 *   copying from after the owner dropped it (a cache eviction while a read that hit the block has
 *   not copied it yet: reads copy within one turn of the event loop of their wake-up).
 */
import { BLOCK_SIZE } from './constants.js';

export class BlockPool {
  private readonly idle: Buffer[] = [];
  private readonly later: { buf: Buffer; at: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  taken = 0;
  reused = 0;

  constructor(
    readonly maxIdle = 64,
    readonly graceMs = 1_000,
  ) {}

  take(): Buffer {
    this.taken++;
    const b = this.idle.pop();
    if (b) {
      this.reused++;
      return b;
    }
    return Buffer.allocUnsafeSlow(BLOCK_SIZE);
  }

  give(buf: Buffer): void {
    if (buf.length === BLOCK_SIZE && buf.byteOffset === 0 && buf.buffer.byteLength === BLOCK_SIZE && this.idle.length < this.maxIdle) {
      this.idle.push(buf);
    }
  }

  giveLater(buf: Buffer): void {
    if (buf.length !== BLOCK_SIZE || this.later.length >= this.maxIdle) return;
    this.later.push({ buf, at: Date.now() + this.graceMs });
    if (!this.timer) {
      this.timer = setTimeout(() => this.drain(), this.graceMs);
      this.timer.unref();
    }
  }

  get idleCount(): number {
    return this.idle.length;
  }

  private drain(): void {
    this.timer = undefined;
    const now = Date.now();
    while (this.later.length > 0 && this.later[0]!.at <= now) this.give(this.later.shift()!.buf);
    if (this.later.length > 0) {
      this.timer = setTimeout(() => this.drain(), Math.max(1, this.later[0]!.at - now));
      this.timer.unref();
    }
  }
}
