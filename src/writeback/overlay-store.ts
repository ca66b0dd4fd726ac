/**
 * OverlayStore: the BlockReader + BlockWriter of a writable volume — dirty blocks from the
 * Journal laid over the snapshot's read stack (`lower`, the CacheStore).
 *
 * Contract:
 * - readBlock(i): the journal's newest content when i is dirty (null when it is all zeros),
 *   else lower.readBlock(i). A read of a block with a write in progress waits for that write,
 *   so a read never sees a half-written slot.
 * - writeBlockRange(i, off, data): serialized per block (a keyed mutex). A whole-block write
 *   needs no read; a partial write merges `data` into the block's current content: the cached
 *   dirty copy, else the journal's, else the parent's (lower.readBlock, null = zeros) — so the
 *   parent block is fetched at most once per block, by the first partial write (its SHA-256 is
 *   remembered, so the commit can skip blocks rewritten with the parent's content). The merged
 *   block goes to journal.writeBlock; `data` is never kept.
 * - flush(): journal.flush() (durable before it resolves).
 * - Errors reach VolumeFile as IoError: ENOSPC for a full disk, EIO otherwise (a parent block
 *   that cannot be read included).
 * - Memory: at most `cacheBlocks` dirty blocks (default 16 = 8 MiB) kept for fast read-modify-
 *   write, plus one block per write in progress; everything else lives in the journal.
 */
import { LRUCache } from 'lru-cache';
import { sha256Base64 } from '../ebs/checksum.js';
import { BLOCK_SIZE } from '../ebs/constants.js';
import { IoError } from '../fs/io-error.js';
import type { BlockReader, BlockWriter, ReadBlockOptions } from '../store/block-store.js';
import type { Logger } from '../util/log.js';
import { Stats } from '../util/stats.js';
import type { Journal } from './journal.js';

export const WritebackStat = {
  parentReads: 'writeback.parent.reads',
  blockWrites: 'writeback.block.writes',
  fullBlockWrites: 'writeback.block.full',
  flushes: 'writeback.flushes',
  dirtyReads: 'writeback.dirty.reads',
} as const;

export interface OverlayOptions {
  journal: Journal;
  lower: BlockReader;
  /** Dirty blocks kept in memory for read-modify-write. Default 16. */
  cacheBlocks?: number;
  stats?: Stats;
  /** Accepted for symmetry with the other stores; nothing is logged per block. */
  logger?: Logger;
}

/** Per-key mutual exclusion, FIFO. */
export class KeyedMutex {
  private readonly tails = new Map<number, Promise<void>>();

  isLocked(key: number): boolean {
    return this.tails.has(key);
  }

  async lock(key: number): Promise<() => void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    return () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}

export class OverlayStore implements BlockReader, BlockWriter {
  readonly journal: Journal;
  private readonly lower: BlockReader;
  private readonly stats: Stats;
  private readonly locks = new KeyedMutex();
  private readonly dirty: LRUCache<number, Buffer>;
  /** SHA-256 of the parent's block ('absent': it read as zeros), learned by read-modify-writes. */
  private readonly parentShas = new Map<number, string>();

  constructor(opts: OverlayOptions) {
    this.journal = opts.journal;
    this.lower = opts.lower;
    this.stats = opts.stats ?? new Stats();
    this.dirty = new LRUCache<number, Buffer>({ max: Math.max(1, opts.cacheBlocks ?? 16) });
  }

  /** Dirty blocks kept in memory now. */
  get cachedBlocks(): number {
    return this.dirty.size;
  }

  readBlock(index: number, opts?: ReadBlockOptions): Promise<Buffer | null> {
    if (!this.journal.has(index) && !this.locks.isLocked(index)) return this.lower.readBlock(index, opts);
    return this.readDirty(index, opts);
  }

  private async readDirty(index: number, opts?: ReadBlockOptions): Promise<Buffer | null> {
    const release = await this.locks.lock(index);
    try {
      if (!this.journal.has(index)) return await this.lower.readBlock(index, opts);
      this.stats.inc(WritebackStat.dirtyReads);
      if (this.journal.isZero(index)) return null;
      const cached = this.dirty.get(index);
      if (cached) return cached;
      const data = await this.journal.readBlock(index);
      return data ?? null;
    } catch (err) {
      throw toIoError(err, `reading written block ${index} from the journal`);
    } finally {
      release();
    }
  }

  async writeBlockRange(index: number, offsetInBlock: number, data: Buffer): Promise<void> {
    if (!(offsetInBlock >= 0 && data.length > 0 && offsetInBlock + data.length <= BLOCK_SIZE)) {
      throw new IoError('EINVAL', `write of ${data.length} bytes at ${offsetInBlock} does not fit block ${index}`);
    }
    const release = await this.locks.lock(index);
    try {
      let block: Buffer;
      if (offsetInBlock === 0 && data.length === BLOCK_SIZE) {
        this.stats.inc(WritebackStat.fullBlockWrites);
        block = Buffer.allocUnsafeSlow(BLOCK_SIZE);
        data.copy(block);
      } else {
        block = await this.currentCopy(index);
        data.copy(block, offsetInBlock);
      }
      await this.journal.writeBlock(index, block, { offset: offsetInBlock, length: data.length });
      this.stats.inc(WritebackStat.blockWrites);
      if (this.journal.isZero(index)) this.dirty.delete(index);
      else this.dirty.set(index, block);
    } catch (err) {
      this.dirty.delete(index); // it may hold bytes the journal did not take
      throw toIoError(err, `writing block ${index} to the journal`);
    } finally {
      release();
    }
  }

  /**
   * The parent's block as the first read-modify-write of `index` saw it: its SHA-256, 'absent'
   * (zeros), or undefined (never fetched: whole-block writes, or written before a restart).
   */
  parentChecksum(index: number): string | 'absent' | undefined {
    return this.parentShas.get(index);
  }

  async flush(): Promise<void> {
    try {
      await this.journal.flush();
      this.stats.inc(WritebackStat.flushes);
    } catch (err) {
      throw toIoError(err, 'making the journal durable');
    }
  }

  /** A block buffer this store may modify: the current content of the block. */
  private async currentCopy(index: number): Promise<Buffer> {
    const cached = this.dirty.get(index);
    if (cached) return cached;
    if (this.journal.has(index)) return (await this.journal.readBlock(index)) ?? Buffer.alloc(BLOCK_SIZE);
    this.stats.inc(WritebackStat.parentReads);
    const parent = await this.lower.readBlock(index);
    const copy = Buffer.allocUnsafeSlow(BLOCK_SIZE);
    if (parent) parent.copy(copy);
    else copy.fill(0);
    this.parentShas.set(index, parent ? sha256Base64(parent) : 'absent');
    return copy;
  }
}

function toIoError(err: unknown, what: string): IoError {
  if (err instanceof IoError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new IoError('ENOSPC', `${what}: the journal's disk is full`, { cause: err });
  return new IoError('EIO', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
