/**
 * Shared fixtures of the writeback unit tests: temp journal dirs, patterned blocks, a fake lower
 * reader that counts reads, and a byte model of a volume.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import type { BlockReader } from '../../../src/store/block-store.js';
import { prng } from '../store/fixtures.js';

export { prng };

export const PARENT_ID = 'snap-0123456789abcdef0';

export async function tempDir(prefix = 'ebsmount-wb-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A block filled from a seeded PRNG (not all zeros). */
export function patternBlock(seed: number): Buffer {
  const rand = prng(seed);
  const b = Buffer.allocUnsafeSlow(BLOCK_SIZE);
  for (let i = 0; i < BLOCK_SIZE; i += 4) b.writeUInt32LE(Math.floor(rand() * 0x1_0000_0000), i);
  return b;
}

/** A lower BlockReader over fixed blocks that counts reads per block. */
export class CountingReader implements BlockReader {
  readonly reads = new Map<number, number>();
  failing = new Set<number>();
  delayMs = 0;
  constructor(readonly blocks: Map<number, Buffer> = new Map()) {}

  async readBlock(index: number): Promise<Buffer | null> {
    this.reads.set(index, (this.reads.get(index) ?? 0) + 1);
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failing.has(index)) {
      const { IoError } = await import('../../../src/fs/io-error.js');
      throw new IoError('EIO', `block ${index} unreadable`);
    }
    return this.blocks.get(index) ?? null;
  }

  get totalReads(): number {
    let n = 0;
    for (const v of this.reads.values()) n += v;
    return n;
  }
}

/** The bytes of a volume as a sparse map of blocks, updated by writes. */
export class ByteModel {
  readonly blocks = new Map<number, Buffer>();
  constructor(initial: Map<number, Buffer> = new Map()) {
    for (const [i, b] of initial) this.blocks.set(i, Buffer.from(b));
  }

  write(position: number, data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      const abs = position + off;
      const index = Math.floor(abs / BLOCK_SIZE);
      const inBlock = abs - index * BLOCK_SIZE;
      const n = Math.min(BLOCK_SIZE - inBlock, data.length - off);
      let b = this.blocks.get(index);
      if (!b) {
        b = Buffer.alloc(BLOCK_SIZE);
        this.blocks.set(index, b);
      }
      data.copy(b, inBlock, off, off + n);
      off += n;
    }
  }

  block(index: number): Buffer {
    return this.blocks.get(index) ?? Buffer.alloc(BLOCK_SIZE);
  }
}
