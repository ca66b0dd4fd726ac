/**
 * BlockBufferPool: reusable 512 KiB buffers for PutSnapshotBlock bodies and GetSnapshotBlock
 * responses, so the server's hot path does not allocate (and garbage-collect) a block per request.
 *
 * Contract: `take()` returns a buffer of exactly BLOCK_SIZE bytes with arbitrary contents, owned by
 * the caller until it calls `give()`; a buffer must not be given back while anything (a pending
 * socket write, a file write) may still read it — when unsure, do not give it back (the GC takes
 * it). At most `maxIdle` buffers are kept.
 */
import { BLOCK_SIZE } from '../ebs/constants.js';

export class BlockBufferPool {
  private readonly idle: Buffer[] = [];

  constructor(private readonly maxIdle = 64) {}

  take(): Buffer {
    return this.idle.pop() ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
  }

  give(buf: Buffer): void {
    if (buf.length === BLOCK_SIZE && buf.byteOffset === 0 && this.idle.length < this.maxIdle) this.idle.push(buf);
  }

  get idleCount(): number {
    return this.idle.length;
  }
}
