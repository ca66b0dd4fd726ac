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
 *   block goes to journal.writeBlock.
 * - Assembling (sequential writes in pieces, e.g. the kernel's 128 KiB FUSE writes): a partial
 *   write at offset 0 of a block that is neither dirty nor assembling does not read the parent:
 *   the block becomes "assembling", a buffer in memory plus the byte ranges written so far; later
 *   writes to it only add ranges. Once the ranges cover the whole block it goes to the journal as
 *   a whole-block write — the parent is never fetched. An assembling block is completed with the
 *   parent's bytes in its gaps (the read-modify-write, one parent read) when it is read, when
 *   flush() runs, or when more than `assembleBlocks` blocks are assembling (the oldest). Its data
 *   is only in memory until then, which is safe: none of it was flushed, so the kernel was never
 *   told it is durable (a crash loses it like any unflushed write). A parent read failing while
 *   completing fails that read/flush (EIO) and the block stays assembling.
 * - flush(): completes every block assembling when it is called (their parent reads run
 *   concurrently), then journal.flush() (durable before it resolves). Every write that completed
 *   before flush() was called is durable when it resolves.
 * - Deadlines: `signal` (ReadBlockOptions / WriteBlockOptions) ends waits for the block's lock
 *   and the parent's block; a write whose signal has aborted before it reached the journal is not
 *   applied (its caller was answered with an error), checked again right before the journal
 *   write, which then runs to its end.
 * - Errors reach VolumeFile as IoError: ENOSPC for a full disk, EIO otherwise (a parent block
 *   that cannot be read included). A full disk is counted (`writeback.disk.full`, `diskFull`) and
 *   logged as one clear line (at most every 30 s): the write or flush gets the error, never an
 *   acknowledgement, so nothing acknowledged is lost.
 * - Memory: at most `cacheBlocks` dirty blocks (default 16 = 8 MiB) kept for fast read-modify-
 *   write, `assembleBlocks` assembling blocks (default 16 = 8 MiB), plus one block per write in
 *   progress; everything else lives in the journal.
 */
import { createHash, type Hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { isAllZero, sha256Base64 } from '../ebs/checksum.js';
import { BLOCK_SIZE } from '../ebs/constants.js';
import { IoError } from '../fs/io-error.js';
import type { BlockReader, BlockWriter, ReadBlockOptions, WriteBlockOptions } from '../store/block-store.js';
import { raceSignal } from '../util/abort.js';
import type { Logger } from '../util/log.js';
import { Stats } from '../util/stats.js';
import type { Journal } from './journal.js';

export const WritebackStat = {
  parentReads: 'writeback.parent.reads',
  blockWrites: 'writeback.block.writes',
  fullBlockWrites: 'writeback.block.full',
  /** Blocks completed from pieces without reading the parent. */
  assembledBlocks: 'writeback.block.assembled',
  flushes: 'writeback.flushes',
  dirtyReads: 'writeback.dirty.reads',
  /** Writes and flushes refused because the journal's disk is full (ENOSPC). */
  diskFull: 'writeback.disk.full',
} as const;

/** How often the disk-full line is logged at most. */
const DISK_FULL_LOG_MS = 30_000;

export interface OverlayOptions {
  journal: Journal;
  lower: BlockReader;
  /** Dirty blocks kept in memory for read-modify-write. Default 16. */
  cacheBlocks?: number;
  /** Blocks assembled from pieces in memory before the parent is read (0 disables). Default 16. */
  assembleBlocks?: number;
  stats?: Stats;
  /** A full journal disk is logged here (rate-limited); nothing is logged per block. */
  logger?: Logger;
}

/** Per-key mutual exclusion, FIFO. */
export class KeyedMutex {
  private readonly tails = new Map<number, Promise<void>>();

  isLocked(key: number): boolean {
    return this.tails.has(key);
  }

  /** Resolves with the release function once the key is ours; `signal` gives up waiting (its turn is then passed on). */
  async lock(key: number, signal?: AbortSignal): Promise<() => void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    const unlock = () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
    try {
      await raceSignal(prev, signal);
    } catch (err) {
      void prev.then(unlock);
      throw err;
    }
    return unlock;
  }
}

/** A block being assembled from pieces: its buffer and the byte ranges written so far. */
interface Assembling {
  buf: Buffer;
  /** Sorted, disjoint, non-adjacent [start, end) ranges. */
  ranges: [number, number][];
  /** SHA-256 of buf[0, hashedTo), fed piece by piece while the pieces come in order; undefined once they do not. */
  hash: Hash | undefined;
  hashedTo: number;
}

export class OverlayStore implements BlockReader, BlockWriter {
  readonly journal: Journal;
  private readonly lower: BlockReader;
  private readonly stats: Stats;
  private readonly locks = new KeyedMutex();
  private readonly dirty: LRUCache<number, Buffer>;
  /** SHA-256 of the parent's block ('absent': it read as zeros), learned by read-modify-writes. */
  private readonly parentShas = new Map<number, string>();
  /** Blocks being assembled (insertion order = age). */
  private readonly assembling = new Map<number, Assembling>();
  private readonly assembleBlocks: number;
  private readonly logger: Logger | undefined;
  private lastDiskFullLog = -Infinity;
  /** The last ENOSPC: when, and what it refused. */
  lastDiskFull: { at: string; message: string } | undefined;

  constructor(opts: OverlayOptions) {
    this.journal = opts.journal;
    this.logger = opts.logger;
    this.lower = opts.lower;
    this.stats = opts.stats ?? new Stats();
    this.dirty = new LRUCache<number, Buffer>({ max: Math.max(1, opts.cacheBlocks ?? 16) });
    this.assembleBlocks = Math.max(0, opts.assembleBlocks ?? 16);
  }

  /** Dirty blocks kept in memory now. */
  get cachedBlocks(): number {
    return this.dirty.size;
  }

  /** Blocks written in pieces whose parent block has not been merged in yet (not in the journal). */
  get assemblingBlocks(): number {
    return this.assembling.size;
  }

  readBlock(index: number, opts?: ReadBlockOptions): Promise<Buffer | null> {
    if (!this.journal.has(index) && !this.locks.isLocked(index) && !this.assembling.has(index)) return this.lower.readBlock(index, opts);
    return this.readDirty(index, opts);
  }

  private async readDirty(index: number, opts?: ReadBlockOptions): Promise<Buffer | null> {
    const release = await this.locks.lock(index, opts?.signal).catch((err: unknown) => {
      throw this.ioError(err, `reading written block ${index}`);
    });
    try {
      if (this.assembling.has(index)) await this.complete(index, opts?.signal);
      if (!this.journal.has(index)) return await this.lower.readBlock(index, opts);
      this.stats.inc(WritebackStat.dirtyReads);
      if (this.journal.isZero(index)) return null;
      const cached = this.dirty.get(index);
      if (cached) return cached;
      const data = await this.journal.readBlock(index);
      return data ?? null;
    } catch (err) {
      throw this.ioError(err, `reading written block ${index} from the journal`);
    } finally {
      release();
    }
  }

  writeBlockRange(index: number, offsetInBlock: number, data: Buffer, opts: WriteBlockOptions = {}): Promise<void> {
    if (!(offsetInBlock >= 0 && data.length > 0 && offsetInBlock + data.length <= BLOCK_SIZE)) {
      return Promise.reject(new IoError('EINVAL', `write of ${data.length} bytes at ${offsetInBlock} does not fit block ${index}`));
    }
    const whole = offsetInBlock === 0 && data.length === BLOCK_SIZE;
    // Room for a new assembling block is made before taking this block's lock (completing the
    // oldest takes its lock; holding two locks at once could deadlock). Otherwise the lock is
    // queued synchronously, so a read issued after this write waits for it.
    if (!whole && offsetInBlock === 0 && this.assembleBlocks > 0 && this.assembling.size >= this.assembleBlocks
      && !this.assembling.has(index)) {
      return this.makeRoom(index, opts.signal).then(() => this.writeLocked(index, offsetInBlock, data, whole, opts.signal));
    }
    return this.writeLocked(index, offsetInBlock, data, whole, opts.signal);
  }

  private async writeLocked(index: number, offsetInBlock: number, data: Buffer, whole: boolean, signal?: AbortSignal): Promise<void> {
    const release = await this.locks.lock(index, signal).catch((err: unknown) => {
      throw this.ioError(err, `writing block ${index}`);
    });
    try {
      // Past its deadline (answered already): this write must not take effect.
      throwIfAborted(signal);
      const asm = this.assembling.get(index);
      let block: Buffer;
      let changed: { offset: number; length: number } | undefined = { offset: offsetInBlock, length: data.length };
      /** SHA-256 of the whole new block, when it comes cheap (the journal then does not read it back to hash it). */
      let sha: string | undefined;
      if (whole) {
        this.assembling.delete(index);
        this.stats.inc(WritebackStat.fullBlockWrites);
        block = Buffer.allocUnsafeSlow(BLOCK_SIZE);
        data.copy(block);
        if (!isAllZero(block)) sha = sha256Base64(block);
      } else if (asm || (offsetInBlock === 0 && this.assembleBlocks > 0 && !this.journal.has(index) && !this.dirty.has(index))) {
        if (!this.assemble(index, asm, offsetInBlock, data)) return;
        // Every byte written: a whole block, without the parent.
        const done = this.assembling.get(index)!;
        block = done.buf;
        changed = undefined;
        if (done.hash && done.hashedTo === BLOCK_SIZE) sha = done.hash.digest('base64');
        done.hash = undefined;
        this.stats.inc(WritebackStat.assembledBlocks);
      } else {
        block = await this.currentCopy(index, signal);
        throwIfAborted(signal);
        data.copy(block, offsetInBlock);
      }
      await this.journal.writeBlock(index, block, changed, sha);
      this.assembling.delete(index);
      this.stats.inc(WritebackStat.blockWrites);
      if (this.journal.isZero(index)) this.dirty.delete(index);
      else this.dirty.set(index, block);
    } catch (err) {
      this.dirty.delete(index); // it may hold bytes the journal did not take
      throw this.ioError(err, `writing block ${index} to the journal`);
    } finally {
      release();
    }
  }

  /**
   * Adds a piece to an assembling block (starting one when `asm` is undefined); true when the
   * block is now fully written (it stays in `assembling` until the journal took it).
   */
  private assemble(index: number, asm: Assembling | undefined, offset: number, data: Buffer): boolean {
    if (!asm) {
      asm = { buf: Buffer.allocUnsafeSlow(BLOCK_SIZE), ranges: [], hash: createHash('sha256'), hashedTo: 0 };
      this.assembling.set(index, asm);
    }
    data.copy(asm.buf, offset);
    // Hashing as the pieces arrive costs no extra pass over the block (nor a read-back at flush).
    if (asm.hash && offset === asm.hashedTo) {
      asm.hash.update(data);
      asm.hashedTo += data.length;
    } else {
      asm.hash = undefined;
    }
    asm.ranges = addRange(asm.ranges, offset, offset + data.length);
    return asm.ranges.length === 1 && asm.ranges[0]![0] === 0 && asm.ranges[0]![1] === BLOCK_SIZE;
  }

  /** Completes the oldest assembling blocks until a new one fits. */
  private async makeRoom(except: number, signal?: AbortSignal): Promise<void> {
    while (this.assembling.size >= this.assembleBlocks) {
      let oldest: number | undefined;
      for (const k of this.assembling.keys()) {
        if (k !== except) {
          oldest = k;
          break;
        }
      }
      if (oldest === undefined) return;
      await this.completeLocked(oldest, signal);
    }
  }

  /** complete() under the block's lock. */
  private async completeLocked(index: number, signal?: AbortSignal): Promise<void> {
    let release: (() => void) | undefined;
    try {
      release = await this.locks.lock(index, signal);
      await this.complete(index, signal);
    } catch (err) {
      throw this.ioError(err, `completing block ${index} with the parent's data`);
    } finally {
      release?.();
    }
  }

  /**
   * Merges the parent's bytes into the gaps of an assembling block and hands the block to the
   * journal (caller holds the block's lock). On failure the block stays assembling.
   */
  private async complete(index: number, signal?: AbortSignal): Promise<void> {
    const asm = this.assembling.get(index);
    if (!asm) return;
    if (!(asm.ranges.length === 1 && asm.ranges[0]![0] === 0 && asm.ranges[0]![1] === BLOCK_SIZE)) {
      this.stats.inc(WritebackStat.parentReads);
      const parent = await this.lower.readBlock(index, { signal });
      this.parentShas.set(index, parent ? sha256Base64(parent) : 'absent');
      let pos = 0;
      for (const [start, end] of [...asm.ranges, [BLOCK_SIZE, BLOCK_SIZE] as [number, number]]) {
        if (start > pos) {
          if (parent) parent.copy(asm.buf, pos, pos, start);
          else asm.buf.fill(0, pos, start);
        }
        pos = end;
      }
      asm.ranges = [[0, BLOCK_SIZE]];
      asm.hash = undefined;
    }
    try {
      await this.journal.writeBlock(index, asm.buf);
    } catch (err) {
      this.dirty.delete(index);
      throw err;
    }
    this.assembling.delete(index);
    this.stats.inc(WritebackStat.blockWrites);
    if (this.journal.isZero(index)) this.dirty.delete(index);
    else this.dirty.set(index, asm.buf);
  }

  /**
   * The parent's block as the first read-modify-write of `index` saw it: its SHA-256, 'absent'
   * (zeros), or undefined (never fetched: whole-block writes, or written before a restart).
   */
  parentChecksum(index: number): string | 'absent' | undefined {
    return this.parentShas.get(index);
  }

  async flush(opts: WriteBlockOptions = {}): Promise<void> {
    // Blocks assembling now hold completed writes: into the journal first (concurrently).
    const results = await Promise.allSettled([...this.assembling.keys()].map((i) => this.completeLocked(i, opts.signal)));
    try {
      await this.journal.flush();
      this.stats.inc(WritebackStat.flushes);
    } catch (err) {
      throw this.ioError(err, 'making the journal durable');
    }
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  /** Forgets the blocks assembling (the writes are being discarded). */
  dropAssembling(): void {
    this.assembling.clear();
  }

  /** The IoError for `err`; a full disk is counted and logged. */
  private ioError(err: unknown, what: string): IoError {
    const e = toIoError(err, what);
    if (e.code === 'ENOSPC') {
      this.stats.inc(WritebackStat.diskFull);
      this.lastDiskFull = { at: new Date().toISOString(), message: e.message };
      const now = Date.now();
      if (now - this.lastDiskFullLog >= DISK_FULL_LOG_MS) {
        this.lastDiskFullLog = now;
        this.logger?.error(
          { journal: this.journal.dir, refused: this.stats.get(WritebackStat.diskFull) },
          `the journal's disk is full (ENOSPC): writes to ${this.journal.dir} are refused with an error (nothing acknowledged is lost); free space there`,
        );
      }
    }
    return e;
  }

  /** A block buffer this store may modify: the current content of the block. */
  private async currentCopy(index: number, signal?: AbortSignal): Promise<Buffer> {
    const cached = this.dirty.get(index);
    if (cached) return cached;
    if (this.journal.has(index)) return (await this.journal.readBlock(index)) ?? Buffer.alloc(BLOCK_SIZE);
    this.stats.inc(WritebackStat.parentReads);
    const parent = await this.lower.readBlock(index, { signal });
    const copy = Buffer.allocUnsafeSlow(BLOCK_SIZE);
    if (parent) parent.copy(copy);
    else copy.fill(0);
    this.parentShas.set(index, parent ? sha256Base64(parent) : 'absent');
    return copy;
  }
}

/** `ranges` (sorted, disjoint, non-adjacent) with [start, end) added, merged. */
export function addRange(ranges: [number, number][], start: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  let s = start;
  let e = end;
  let placed = false;
  for (const [a, b] of ranges) {
    if (b < s) out.push([a, b]);
    else if (a > e) {
      if (!placed) {
        out.push([s, e]);
        placed = true;
      }
      out.push([a, b]);
    } else {
      s = Math.min(s, a);
      e = Math.max(e, b);
    }
  }
  if (!placed) out.push([s, e]);
  return out;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new IoError('EIO', "the operation's deadline passed", { cause: signal.reason });
}

function toIoError(err: unknown, what: string): IoError {
  if (err instanceof IoError) return err;
  if ((err as Error)?.name === 'AbortError') return new IoError('EIO', `${what}: the operation's deadline passed`, { cause: err });
  // A journal poisoned by a failed write names the cause.
  const code = (err as NodeJS.ErrnoException)?.code ?? ((err as Error)?.cause as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new IoError('ENOSPC', `${what}: the journal's disk is full`, { cause: err });
  return new IoError('EIO', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
