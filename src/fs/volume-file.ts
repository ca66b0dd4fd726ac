/**
 * VolumeFile: the volume image as a fixed-size file of bytes, over a BlockReader (and, when
 * writable, a BlockWriter). The FUSE adapter only translates its calls.
 *
 * Contract:
 * - read(buf, length, position) copies min(length, size - position) bytes into buf[0..] and
 *   resolves to that count: 0 at or after the end, short at the end. Blocks that read as null
 *   are zero-filled. The observer (the prefetcher) is told the block range before anything is
 *   awaited, so read-ahead starts with the demand fetch. All blocks of a read are fetched
 *   concurrently and each is copied as soon as it arrives (a read larger than the cache still
 *   works); a failing block rejects the read with its IoError, once every block has settled
 *   (so `buf` is never written after the read has answered).
 * - write(): IoError EROFS without a writer. Otherwise split per block and handed to
 *   writer.writeBlockRange (the writer does read-modify-write and locking); a write starting at
 *   or after the end is IoError ENOSPC, one straddling the end is short. Reads of a writable
 *   volume come from the one `reader`, which the writer side builds to overlay dirty blocks.
 * - Deadlines (`opts.signal`, src/fs/op-deadline.ts): once the signal aborts, the op has been
 *   answered and its kernel buffer may be freed: read() copies into `buf` only while the signal
 *   has not aborted (each copy checks it synchronously, right before copying); write() copies
 *   the caller's bytes into its own buffer before anything is awaited, and the signal stops the
 *   write before it reaches the journal. The signal reaches every layer below.
 * - Hot path: no allocation of block buffers, one Buffer.copy per touched block into `buf`; a
 *   write copies its bytes once.
 */
import { BLOCK_SIZE } from '../ebs/constants.js';
import type { BlockReader, BlockWriter, ReadObserver } from '../store/block-store.js';
import { StatKey, type Stats } from '../util/stats.js';
import { blockIndexOf, blockPieces, readableLength } from './block-math.js';
import { IoError } from './io-error.js';

export type { ReadObserver };

export interface VolumeFileOptions {
  sizeBytes: number;
  reader: BlockReader;
  writer?: BlockWriter;
  observer?: ReadObserver;
  stats: Stats;
  /** Blocks the volume has allocated (known so far), for st_blocks. */
  allocatedBlocks: () => number;
}

/** `signal`: the operation's deadline; once it aborts, the op has been answered (src/fs/op-deadline.ts). */
export interface OpOptions {
  signal?: AbortSignal;
}

function throwIfAnswered(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new IoError('EIO', "the read's deadline passed", { cause: signal.reason });
}

export class VolumeFile {
  readonly sizeBytes: number;
  readonly writable: boolean;
  private readonly reader: BlockReader;
  private readonly writer: BlockWriter | undefined;
  private readonly observer: ReadObserver | undefined;
  private readonly stats: Stats;
  private readonly allocated: () => number;

  constructor(opts: VolumeFileOptions) {
    this.sizeBytes = opts.sizeBytes;
    this.reader = opts.reader;
    this.writer = opts.writer;
    this.writable = opts.writer !== undefined;
    this.observer = opts.observer;
    this.stats = opts.stats;
    this.allocated = opts.allocatedBlocks;
  }

  async read(buf: Buffer, length: number, position: number, opts: OpOptions = {}): Promise<number> {
    const signal = opts.signal;
    if (!Number.isInteger(position) || position < 0) throw new IoError('EINVAL', `invalid read offset ${position}`);
    const n = readableLength(position, Math.min(length, buf.length), this.sizeBytes);
    if (n === 0) return 0;
    const first = blockIndexOf(position);
    const last = blockIndexOf(position + n - 1);
    this.observer?.onRead(first, last);
    if (first === last) {
      const block = await this.reader.readBlock(first, { signal });
      const offsetInBlock = position - first * BLOCK_SIZE;
      throwIfAnswered(signal);
      if (block === null) buf.fill(0, 0, n);
      else block.copy(buf, 0, offsetInBlock, offsetInBlock + n);
    } else {
      // allSettled: never touch `buf` after answering (the kernel's buffer may be gone by then).
      const results = await Promise.allSettled(
        blockPieces(position, n).map((piece) =>
          this.reader.readBlock(piece.index, { signal }).then((block) => {
            throwIfAnswered(signal);
            if (block === null) buf.fill(0, piece.bufferOffset, piece.bufferOffset + piece.length);
            else block.copy(buf, piece.bufferOffset, piece.offsetInBlock, piece.offsetInBlock + piece.length);
          }),
        ),
      );
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    }
    this.stats.inc(StatKey.bytesRead, n);
    return n;
  }

  async write(buf: Buffer, length: number, position: number, opts: OpOptions = {}): Promise<number> {
    if (!this.writer) throw new IoError('EROFS', 'the volume is mounted read-only');
    if (!Number.isInteger(position) || position < 0) throw new IoError('EINVAL', `invalid write offset ${position}`);
    const wanted = Math.min(length, buf.length);
    if (wanted <= 0) return 0;
    if (position >= this.sizeBytes) {
      throw new IoError('ENOSPC', `write at ${position} is past the end of the ${this.sizeBytes}-byte volume`);
    }
    const n = readableLength(position, wanted, this.sizeBytes);
    const writer = this.writer;
    // Ours before anything is awaited: the kernel's buffer may be freed once the op is answered.
    const data = Buffer.allocUnsafeSlow(n);
    buf.copy(data, 0, 0, n);
    const results = await Promise.allSettled(
      blockPieces(position, n).map((piece) =>
        writer.writeBlockRange(
          piece.index,
          piece.offsetInBlock,
          data.subarray(piece.bufferOffset, piece.bufferOffset + piece.length),
          { signal: opts.signal },
        ),
      ),
    );
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    this.stats.inc(StatKey.bytesWritten, n);
    return n;
  }

  async flush(opts: OpOptions = {}): Promise<void> {
    await this.writer?.flush({ signal: opts.signal });
  }

  allocatedBlocks(): number {
    return this.allocated();
  }
}
