/**
 * The on-disk formats of a journal: index.log records and the atomic meta.json write.
 *
 * index.log is a sequence of fixed 64-byte little-endian records:
 *   0 magic u32 'EBJ1' | 4 type u8 (1 block, 2 sync) | 5..7 zero | 8 seq u64 |
 *   16 blockIndex u32 (sync: records in its batch) | 20 slot u32 (0xffffffff: all-zero block) |
 *   24 sha256 (32 raw bytes) | 56 zero u32 | 60 crc32 of bytes 0..59
 * A batch of block records is followed by one sync record; replay applies a batch only when its
 * sync record is read (so a torn batch at the tail is ignored as a whole) and skips single
 * records whose magic or CRC is wrong. Fixed size means a torn partial record is simply a short
 * tail.
 */
import { crc32 } from 'node:zlib';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';

export const RECORD_SIZE = 64;
export const RECORD_MAGIC = 0x314a4245; // 'EBJ1'
export const TYPE_BLOCK = 1;
export const TYPE_SYNC = 2;
/** Slot value of an all-zero block: no data in blocks.dat. */
export const NO_SLOT = 0xffffffff;

export interface IndexRecord {
  type: typeof TYPE_BLOCK | typeof TYPE_SYNC;
  seq: number;
  /** Block index (sync: number of block records in the batch). */
  blockIndex: number;
  /** Slot in blocks.dat, NO_SLOT for an all-zero block. */
  slot: number;
  /** base64 SHA-256 of the block. */
  sha256: string;
}

const EMPTY_SHA = Buffer.alloc(32);

export function encodeRecord(buf: Buffer, off: number, rec: IndexRecord): void {
  buf.fill(0, off, off + RECORD_SIZE);
  buf.writeUInt32LE(RECORD_MAGIC, off);
  buf.writeUInt8(rec.type, off + 4);
  buf.writeBigUInt64LE(BigInt(rec.seq), off + 8);
  buf.writeUInt32LE(rec.blockIndex >>> 0, off + 16);
  buf.writeUInt32LE(rec.slot >>> 0, off + 20);
  const sha = rec.sha256 ? Buffer.from(rec.sha256, 'base64') : EMPTY_SHA;
  if (sha.length !== 32) throw new RangeError('sha256 must be 32 bytes');
  sha.copy(buf, off + 24);
  buf.writeUInt32LE(crc32(buf.subarray(off, off + 60)), off + 60);
}

/** The record at `off`, or null when its magic, type or CRC is wrong. */
export function decodeRecord(buf: Buffer, off: number): IndexRecord | null {
  if (buf.readUInt32LE(off) !== RECORD_MAGIC) return null;
  if (buf.readUInt32LE(off + 60) !== crc32(buf.subarray(off, off + 60))) return null;
  const type = buf.readUInt8(off + 4);
  if (type !== TYPE_BLOCK && type !== TYPE_SYNC) return null;
  return {
    type,
    seq: Number(buf.readBigUInt64LE(off + 8)),
    blockIndex: buf.readUInt32LE(off + 16),
    slot: buf.readUInt32LE(off + 20),
    sha256: type === TYPE_BLOCK ? buf.subarray(off + 24, off + 56).toString('base64') : '',
  };
}

/** fsync a directory, so a rename or a new file in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `name` in `dir` atomically and durably: tmp file, fsync, rename, fsync of the dir. */
export async function writeFileAtomic(dir: string, name: string, content: string | Buffer): Promise<void> {
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, name));
  await fsyncDir(dir);
}
