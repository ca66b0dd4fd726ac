/**
 * ByteSource: the one thing the partition-table parser and the filesystem probes read through —
 * "give me `length` bytes at `offset`" of a disk (or of a part of one) whose size is known.
 *
 * Contract:
 * - read(offset, length) resolves to exactly `length` bytes; bytes past the end read as zeros
 *   (the parsers check ranges against `sizeBytes` themselves and say so in a note). It rejects
 *   only when the bytes cannot be had (an EIO from below).
 * - Implementations: over a Buffer (unit tests), over a file (an image, a partition file), over a
 *   BlockReader (a mounted or inspected snapshot: fetches only the 512 KiB blocks the range
 *   touches, through the cache), and `sliceSource` (a window of another source: a partition).
 */
import { open } from 'node:fs/promises';
import { BLOCK_SIZE } from '../ebs/constants.js';
import type { BlockReader } from '../store/block-store.js';

export interface ByteSource {
  readonly sizeBytes: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export function bufferSource(buf: Buffer, sizeBytes = buf.length): ByteSource {
  return {
    sizeBytes,
    read: async (offset, length) => {
      const out = Buffer.alloc(length);
      if (offset < buf.length) buf.copy(out, 0, offset, Math.min(buf.length, offset + length));
      return out;
    },
  };
}

/** A window [offset, offset + sizeBytes) of `parent`. */
export function sliceSource(parent: ByteSource, offset: number, sizeBytes: number): ByteSource {
  return {
    sizeBytes,
    read: (o, length) => parent.read(offset + o, length),
  };
}

/** Reads a volume's bytes block by block; blocks that read as null are zeros. */
export function blockReaderSource(reader: BlockReader, sizeBytes: number): ByteSource {
  return {
    sizeBytes,
    read: async (offset, length) => {
      const out = Buffer.alloc(length);
      const end = Math.min(offset + length, sizeBytes);
      let pos = offset;
      while (pos < end) {
        const index = Math.floor(pos / BLOCK_SIZE);
        const inBlock = pos - index * BLOCK_SIZE;
        const n = Math.min(BLOCK_SIZE - inBlock, end - pos);
        const block = await reader.readBlock(index);
        if (block) block.copy(out, pos - offset, inBlock, inBlock + n);
        pos += n;
      }
      return out;
    },
  };
}

/** A regular file (an image, a partition file), opened read-only until `close()`. */
export async function openFileSource(path: string): Promise<ByteSource & { close(): Promise<void> }> {
  const fh = await open(path, 'r');
  const st = await fh.stat();
  const sizeBytes = st.size;
  return {
    sizeBytes,
    read: async (offset, length) => {
      const out = Buffer.alloc(length);
      let done = 0;
      while (done < length && offset + done < sizeBytes) {
        const { bytesRead } = await fh.read(out, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return out;
    },
    close: () => fh.close(),
  };
}
