/**
 * ImageSource: a raw disk image (regular file or block device) read as 512 KiB blocks.
 *
 * Contract:
 * - `sizeBytes` is the file size, or for a block device its size from
 *   /sys/dev/block/MAJ:MIN/size (fstat reports 0 for devices).
 * - `readBlock(index, buf)` fills `buf` (BLOCK_SIZE bytes) with positional reads; past the end of
 *   the image (the tail block) the rest is zeros. Reads never move a shared file position, so
 *   many can run at once on one handle.
 * - Missing or unreadable images, directories and empty images are UserErrors (one line).
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { BLOCK_SIZE } from '../ebs/constants.js';
import { UserError } from '../errors/user-error.js';

export interface ImageInfo {
  sizeBytes: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  isBlockDevice: boolean;
}

export async function blockDeviceSize(rdev: number): Promise<number> {
  // Linux dev_t: major = bits 8–19 and 32–43, minor = bits 0–7 and 20–31 (glibc gnu_dev_major).
  const d = BigInt(rdev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  const text = await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  return Number(text.trim()) * 512;
}

export class ImageSource {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly info: ImageInfo,
  ) {}

  static async open(path: string): Promise<ImageSource> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new UserError(`image ${path} does not exist`);
      if (code === 'EACCES' || code === 'EPERM') throw new UserError(`cannot read image ${path} (permission denied)`);
      throw new UserError(`cannot open image ${path}: ${(err as Error).message}`);
    }
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new UserError(`image ${path} is a directory`);
      let sizeBytes = st.size;
      const isBlockDevice = st.isBlockDevice();
      if (isBlockDevice) sizeBytes = await blockDeviceSize(st.rdev);
      else if (!st.isFile()) throw new UserError(`image ${path} is not a regular file or block device`);
      if (sizeBytes === 0) throw new UserError(`image ${path} is empty`);
      return new ImageSource(path, fh, { sizeBytes, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, isBlockDevice });
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  get sizeBytes(): number {
    return this.info.sizeBytes;
  }

  get blockCount(): number {
    return Math.ceil(this.info.sizeBytes / BLOCK_SIZE);
  }

  /** Fills `buf` with block `index`; returns the number of image bytes in it (the rest is 0). */
  async readBlock(index: number, buf: Buffer): Promise<number> {
    const pos = index * BLOCK_SIZE;
    const want = Math.max(0, Math.min(BLOCK_SIZE, this.info.sizeBytes - pos));
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.fh.read(buf, got, want - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < BLOCK_SIZE) buf.fill(0, got, BLOCK_SIZE);
    if (got < want) throw new UserError(`image ${this.path} shrank while it was being read (block ${index})`);
    return got;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
