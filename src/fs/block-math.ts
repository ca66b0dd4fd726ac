/**
 * Byte ranges ↔ 512 KiB blocks. Pure arithmetic, no I/O.
 *
 * Contract: offsets are plain numbers (exact up to 2^53; volumes stop at 64 TiB = 2^46);
 * `readableLength` clamps a request to the end of the volume (0 at or after the end);
 * `blockPieces` splits a clamped range into one piece per touched block, in ascending order,
 * whose lengths sum to the range length and whose buffer offsets are contiguous from 0.
 */
import { BLOCK_SIZE } from '../ebs/constants.js';

export interface BlockPiece {
  /** Block index. */
  index: number;
  /** Where the piece starts inside the block. */
  offsetInBlock: number;
  /** Bytes of the piece (1..BLOCK_SIZE). */
  length: number;
  /** Where the piece starts inside the caller's buffer. */
  bufferOffset: number;
}

export function blockIndexOf(offset: number): number {
  return Math.floor(offset / BLOCK_SIZE);
}

/** Bytes of [position, position+length) that lie inside a volume of `sizeBytes`; 0 past the end. */
export function readableLength(position: number, length: number, sizeBytes: number): number {
  if (!(position >= 0) || !(length > 0) || position >= sizeBytes) return 0;
  return Math.min(length, sizeBytes - position);
}

/** First and last block touched by a non-empty range. */
export function blockSpan(position: number, length: number): { first: number; last: number } {
  return { first: blockIndexOf(position), last: blockIndexOf(position + length - 1) };
}

/** One piece per block touched by the non-empty range [position, position+length). */
export function blockPieces(position: number, length: number): BlockPiece[] {
  const pieces: BlockPiece[] = [];
  let bufferOffset = 0;
  let offset = position;
  const end = position + length;
  while (offset < end) {
    const index = blockIndexOf(offset);
    const offsetInBlock = offset - index * BLOCK_SIZE;
    const pieceLength = Math.min(BLOCK_SIZE - offsetInBlock, end - offset);
    pieces.push({ index, offsetInBlock, length: pieceLength, bufferOffset });
    bufferOffset += pieceLength;
    offset += pieceLength;
  }
  return pieces;
}
