/**
 * Journal: the dirty blocks of one writable mount, on local disk, crash-safe.
 *
 * Layout of a journal directory (names in paths.ts):
 * - meta.json: what the journal is for (parent, size, description, tags, endpoint) and its
 *   state open → committing → committed; always replaced atomically (tmp, fsync, rename, fsync dir).
 * - blocks.dat: fixed 512 KiB slots holding full merged blocks.
 * - index.log: append-only 64-byte records blockIndex → slot + SHA-256, in batches closed by a
 *   sync record (format in journal-format.ts).
 *
 * Contract:
 * - writeBlock(index, full) stores a whole merged block. The first write to a block after a
 *   durable point goes to a NEW slot (copy-on-write: the slot the durable index points to is never
 *   touched); later writes before the next flush() overwrite that fresh slot in place (only the
 *   changed range). An all-zero block is kept as a record without a slot (zero sentinel). Writes to
 *   one block must be serialized by the caller (OverlayStore's per-block lock); writes to
 *   different blocks may run concurrently.
 * - flush() makes every write that completed before it was called durable: it seals the fresh
 *   slots (writes arriving meanwhile go to new slots), waits for writes already in progress,
 *   hashes the sealed slots, fdatasyncs blocks.dat, appends their records plus a sync record to
 *   index.log and fdatasyncs it. Only then are the slots those records superseded freed for
 *   reuse. Index records are therefore only ever written for data that is already on disk, and
 *   replay needs no verification of block data. Flushes are serialized; a flush with nothing
 *   fresh does no I/O. A failed fsync poisons the journal (every later call throws): what is on
 *   disk is still consistent, and reopening recovers it.
 * - Hashing: a write of the whole slot may bring the SHA-256 of its data (`sha`, which the caller
 *   computed anyway, e.g. while assembling the block from pieces); the flush records it once that
 *   write succeeded. Every other sealed slot is read back and hashed by the flush (a few at a
 *   time, in the threadpool). Either way a record names exactly the bytes its slot holds.
 * - Writes not yet flushed are in blocks.dat (never only in memory) but not in the index: after a
 *   crash they are lost, as the kernel was never told they were durable.
 * - open() replays index.log: batches apply when their sync record is read, a torn tail (partial
 *   record or batch without its sync record) is ignored, records with a bad CRC are skipped. A
 *   writable open then truncates the torn tail, drops unreferenced slots past the last used one,
 *   and rewrites (compacts) the index when it holds bad records or much dead history.
 * - Memory: one small entry per dirty block (slot numbers and a base64 SHA-256); block data is
 *   read back from blocks.dat on demand. A slot being read is pinned and not reused until the
 *   read ends.
 * - One process at a time (journal-lock.ts); `readOnly` opens (listing) take no lock and write
 *   nothing.
 */
import { mkdir, open, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tag } from '../ebs/api.js';
import { isAllZero, sha256Base64Async } from '../ebs/checksum.js';
import { BLOCK_SIZE, ZERO_BLOCK_SHA256, blocksInVolume } from '../ebs/constants.js';
import { silentLogger, type Logger } from '../util/log.js';
import {
  NO_SLOT, RECORD_SIZE, TYPE_BLOCK, TYPE_SYNC, decodeRecord, encodeRecord, fsyncDir, writeFileAtomic,
  type IndexRecord,
} from './journal-format.js';
import { acquireJournalLock, type JournalLock } from './journal-lock.js';
import { BLOCKS_FILE, INDEX_FILE, META_FILE } from './paths.js';

export const JOURNAL_VERSION = 1;
/** cur/durable value of an all-zero block. */
const ZERO = -1;
/** Blocks hashed (read back) at once by a flush. */
const FLUSH_HASH_CONCURRENCY = 4;

export type JournalState = 'open' | 'committing' | 'committed';

export interface JournalMeta {
  version: number;
  journalId: string;
  parentSnapshotId: string;
  volumeSizeGiB: number;
  endpoint?: string;
  region?: string;
  description?: string;
  tags: Tag[];
  state: JournalState;
  createdAt: string;
  /** The child: set when StartSnapshot answered (still pending while state is committing); null when committed without changes. */
  childSnapshotId?: string | null;
  committingSince?: string;
  committedAt?: string;
  /** Blocks the commit wrote. */
  committedBlocks?: number;
  /** Bumped by `commit --restart` after the pending child went to error: a new ClientToken. */
  tokenGeneration?: number;
  /** StartSnapshot Timeout fixed at the first attempt (part of the idempotent parameters). */
  snapshotTimeoutMinutes?: number;
  lastError?: string;
}

export type NewJournalMeta = Pick<JournalMeta, 'journalId' | 'parentSnapshotId' | 'volumeSizeGiB' | 'endpoint' | 'region' | 'description'> & {
  tags?: Tag[];
};

interface Entry {
  /** Slot of the newest content, or ZERO. */
  cur: number;
  /** cur was written since the last flush sealed it: not in the index yet, writable in place. */
  fresh: boolean;
  /** What the durable index says: slot, ZERO, or undefined (no durable record). */
  durable: number | undefined;
  /** base64 SHA-256 of the durable content. */
  durableSha: string | undefined;
  /** While fresh: the SHA-256 of cur's content given by the write of the whole slot (undefined if it failed). */
  freshSha?: Promise<string | undefined>;
}

export interface ReplayStats {
  records: number;
  badRecords: number;
  /** Bytes after the last sync record (torn tail). */
  tornBytes: number;
  batches: number;
}

export interface JournalOpenOptions {
  readOnly?: boolean;
  logger?: Logger;
  /** Compact the index when it holds more than max(this, 4 × dirty blocks) records. Default 65,536. */
  compactThreshold?: number;
}

export class JournalError extends Error {
  override readonly name = 'JournalError';
}

export class Journal {
  readonly dir: string;
  readonly readOnly: boolean;
  readonly replayStats: ReplayStats;
  private metaValue: JournalMeta;
  private readonly logger: Logger;
  private readonly entries: Map<number, Entry>;
  private readonly totalBlocks: number;
  private blocksFh: FileHandle | undefined;
  private indexFh: FileHandle | undefined;
  private indexSize: number;
  private indexRecords: number;
  private seq: number;
  private nextSlot: number;
  private readonly freeSlots: number[];
  private readonly pins = new Map<number, number>();
  private readonly freeWhenUnpinned = new Set<number>();
  private readonly inflight = new Set<Promise<unknown>>();
  private flushChain: Promise<void> = Promise.resolve();
  private metaChain: Promise<void> = Promise.resolve();
  private readonly compactThreshold: number;
  private lock: JournalLock | undefined;
  private failed: Error | undefined;
  private closed = false;

  private constructor(init: {
    dir: string;
    meta: JournalMeta;
    readOnly: boolean;
    logger: Logger;
    entries: Map<number, Entry>;
    blocksFh?: FileHandle;
    indexFh?: FileHandle;
    indexSize: number;
    indexRecords: number;
    seq: number;
    nextSlot: number;
    freeSlots: number[];
    replayStats: ReplayStats;
    compactThreshold: number;
    lock?: JournalLock;
  }) {
    this.dir = init.dir;
    this.metaValue = init.meta;
    this.readOnly = init.readOnly;
    this.logger = init.logger;
    this.entries = init.entries;
    this.totalBlocks = blocksInVolume(init.meta.volumeSizeGiB);
    this.blocksFh = init.blocksFh;
    this.indexFh = init.indexFh;
    this.indexSize = init.indexSize;
    this.indexRecords = init.indexRecords;
    this.seq = init.seq;
    this.nextSlot = init.nextSlot;
    this.freeSlots = init.freeSlots;
    this.replayStats = init.replayStats;
    this.compactThreshold = init.compactThreshold;
    this.lock = init.lock;
  }

  // ---- opening ----

  /** True when `dir` holds a journal (its meta.json exists). */
  static async exists(dir: string): Promise<boolean> {
    try {
      await stat(join(dir, META_FILE));
      return true;
    } catch {
      return false;
    }
  }

  static async readMeta(dir: string): Promise<JournalMeta> {
    let text: string;
    try {
      text = await readFile(join(dir, META_FILE), 'utf8');
    } catch (err) {
      throw new JournalError(`${dir} is not an ebsmount journal (no ${META_FILE}: ${(err as Error).message})`);
    }
    let meta: JournalMeta;
    try {
      meta = JSON.parse(text) as JournalMeta;
    } catch {
      throw new JournalError(`${join(dir, META_FILE)} is damaged (not JSON)`);
    }
    if (typeof meta !== 'object' || meta === null || typeof meta.journalId !== 'string' || typeof meta.parentSnapshotId !== 'string'
      || !Number.isInteger(meta.volumeSizeGiB)) {
      throw new JournalError(`${join(dir, META_FILE)} is not a valid journal description`);
    }
    if (meta.version !== JOURNAL_VERSION) {
      throw new JournalError(`journal ${dir} has format version ${meta.version}; this ebsmount reads version ${JOURNAL_VERSION}`);
    }
    meta.tags ??= [];
    return meta;
  }

  /** Creates a new, empty journal in `dir` (made if missing; must not hold a journal already). */
  static async create(dir: string, init: NewJournalMeta, opts: JournalOpenOptions = {}): Promise<Journal> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (await Journal.exists(dir)) throw new JournalError(`${dir} already holds a journal`);
    const lock = await acquireJournalLock(dir);
    try {
      for (const name of [BLOCKS_FILE, INDEX_FILE]) {
        const fh = await open(join(dir, name), 'w', 0o600);
        await fh.sync();
        await fh.close();
      }
      const meta: JournalMeta = {
        version: JOURNAL_VERSION,
        journalId: init.journalId,
        parentSnapshotId: init.parentSnapshotId,
        volumeSizeGiB: init.volumeSizeGiB,
        ...(init.endpoint ? { endpoint: init.endpoint } : {}),
        ...(init.region ? { region: init.region } : {}),
        ...(init.description !== undefined ? { description: init.description } : {}),
        tags: init.tags ?? [],
        state: 'open',
        createdAt: new Date().toISOString(),
      };
      // meta.json last: a directory with meta.json is a complete journal.
      await writeFileAtomic(dir, META_FILE, JSON.stringify(meta, null, 2) + '\n');
      await fsyncDir(join(dir, '..')).catch(() => {});
    } catch (err) {
      await lock.release();
      throw err;
    }
    await lock.release();
    return Journal.open(dir, opts);
  }

  static async open(dir: string, opts: JournalOpenOptions = {}): Promise<Journal> {
    const readOnly = opts.readOnly ?? false;
    const logger = opts.logger ?? silentLogger;
    const meta = await Journal.readMeta(dir);
    const lock = readOnly ? undefined : await acquireJournalLock(dir);
    try {
      return await Journal.load(dir, meta, readOnly, logger, opts.compactThreshold ?? 65_536, lock);
    } catch (err) {
      await lock?.release();
      throw err;
    }
  }

  private static async load(
    dir: string, meta: JournalMeta, readOnly: boolean, logger: Logger, compactThreshold: number, lock?: JournalLock,
  ): Promise<Journal> {
    const blocksPath = join(dir, BLOCKS_FILE);
    const indexPath = join(dir, INDEX_FILE);
    let indexFh: FileHandle | undefined;
    let blocksFh: FileHandle | undefined;
    try {
      indexFh = await openMaybe(indexPath, readOnly);
      blocksFh = await openMaybe(blocksPath, readOnly);
      const replay = indexFh ? await replayIndex(indexFh) : emptyReplay();
      const blocksSize = blocksFh ? (await blocksFh.stat()).size : 0;
      const slotsOnDisk = Math.floor(blocksSize / BLOCK_SIZE);
      const totalBlocks = blocksInVolume(meta.volumeSizeGiB);
      const used = new Set<number>();
      let maxSlot = -1;
      const entries = new Map<number, Entry>();
      for (const [index, rec] of replay.durable) {
        if (index >= totalBlocks) throw new JournalError(`journal ${dir}: block ${index} is outside the ${meta.volumeSizeGiB} GiB volume`);
        const slot = rec.slot === NO_SLOT ? ZERO : rec.slot;
        if (slot !== ZERO) {
          if (slot >= slotsOnDisk) throw new JournalError(`journal ${dir} is damaged: block ${index} is in slot ${slot}, past the end of ${BLOCKS_FILE}`);
          if (used.has(slot)) throw new JournalError(`journal ${dir} is damaged: slot ${slot} is used twice`);
          used.add(slot);
          maxSlot = Math.max(maxSlot, slot);
        }
        entries.set(index, { cur: slot, fresh: false, durable: slot, durableSha: rec.sha256 });
      }
      const nextSlot = maxSlot + 1;
      const freeSlots: number[] = [];
      for (let s = nextSlot - 1; s >= 0; s--) if (!used.has(s)) freeSlots.push(s);
      const stats = replay.stats;
      if (stats.badRecords > 0 || stats.tornBytes > 0) {
        logger.warn({ dir, ...stats }, 'journal replay skipped damaged or unfinished records');
      }
      const journal = new Journal({
        dir, meta, readOnly, logger, entries, blocksFh, indexFh,
        indexSize: replay.validEnd, indexRecords: replay.validEnd / RECORD_SIZE, seq: replay.maxSeq,
        nextSlot, freeSlots, replayStats: stats, compactThreshold, lock,
      });
      if (!readOnly) {
        // Unreferenced slots past the last used one held writes that never became durable.
        if (blocksSize > nextSlot * BLOCK_SIZE) {
          await blocksFh!.truncate(nextSlot * BLOCK_SIZE);
          await blocksFh!.sync();
        }
        if (stats.badRecords > 0 || journal.needsCompaction()) await journal.compact();
        else if (stats.tornBytes > 0) {
          await indexFh!.truncate(replay.validEnd);
          await indexFh!.sync();
        }
      }
      return journal;
    } catch (err) {
      await indexFh?.close().catch(() => {});
      await blocksFh?.close().catch(() => {});
      throw err;
    }
  }

  // ---- state ----

  get meta(): Readonly<JournalMeta> {
    return this.metaValue;
  }

  get journalId(): string {
    return this.metaValue.journalId;
  }

  /** Replaces meta.json atomically with the current meta merged with `patch`. */
  updateMeta(patch: Partial<JournalMeta>): Promise<void> {
    if (this.readOnly) return Promise.reject(new JournalError('journal opened read-only'));
    const run = this.metaChain.then(async () => {
      const next = { ...this.metaValue, ...patch };
      await writeFileAtomic(this.dir, META_FILE, JSON.stringify(next, null, 2) + '\n');
      this.metaValue = next;
    });
    this.metaChain = run.catch(() => {});
    return run;
  }

  /** True when the journal holds the block (written since the mount, zeros included). */
  has(index: number): boolean {
    return this.entries.has(index);
  }

  /** True when the block is dirty and all zeros. */
  isZero(index: number): boolean {
    return this.entries.get(index)?.cur === ZERO;
  }

  get dirtyBlockCount(): number {
    return this.entries.size;
  }

  /** Dirty blocks, ascending. */
  dirtyIndexes(): number[] {
    return [...this.entries.keys()].sort((a, b) => a - b);
  }

  /** Writes since the last flush (not durable yet). */
  get freshBlockCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.fresh) n++;
    return n;
  }

  /** base64 SHA-256 of the block's durable content (undefined when not durable or not dirty). */
  durableChecksum(index: number): string | undefined {
    const e = this.entries.get(index);
    return e && !e.fresh ? e.durableSha : undefined;
  }

  /** Slots in blocks.dat (used and free): its size is slotCount × 512 KiB. */
  get slotCount(): number {
    return this.nextSlot;
  }

  get freeSlotCount(): number {
    return this.freeSlots.length;
  }

  // ---- data ----

  /** The block's newest content; null when it is all zeros; undefined when not dirty. */
  async readBlock(index: number): Promise<Buffer | null | undefined> {
    this.assertUsable();
    const e = this.entries.get(index);
    if (!e) return undefined;
    if (e.cur === ZERO) return null;
    return this.readSlot(e.cur);
  }

  /**
   * readBlock into the caller's 512 KiB buffer (no allocation): true when `buf` now holds the
   * block, null when it is all zeros (buf untouched), undefined when not dirty.
   */
  async readBlockInto(index: number, buf: Buffer): Promise<true | null | undefined> {
    this.assertUsable();
    if (buf.length !== BLOCK_SIZE) throw new RangeError(`a block is ${BLOCK_SIZE} bytes, got ${buf.length}`);
    const e = this.entries.get(index);
    if (!e) return undefined;
    if (e.cur === ZERO) return null;
    await this.readSlot(e.cur, buf);
    return true;
  }

  /**
   * Stores the whole new content of block `index` (`full`, 512 KiB; copied to disk before the
   * promise settles). `changed` names the range that differs from the previous content, so an
   * in-place update writes only that. `sha`: the base64 SHA-256 of `full` when the caller knows
   * it (it must be right: it is recorded as is); used when this write covers the whole slot.
   */
  writeBlock(index: number, full: Buffer, changed?: { offset: number; length: number }, sha?: string): Promise<void> {
    this.assertWritable();
    if (!Number.isInteger(index) || index < 0 || index >= this.totalBlocks) {
      return Promise.reject(new RangeError(`block ${index} is outside the volume`));
    }
    if (full.length !== BLOCK_SIZE) return Promise.reject(new RangeError(`a block is ${BLOCK_SIZE} bytes, got ${full.length}`));
    const e = this.entries.get(index);
    if (isAllZero(full)) {
      if (e) {
        if (e.fresh && e.cur !== ZERO) this.freeSlot(e.cur);
        e.cur = ZERO;
        e.fresh = true;
        e.freshSha = undefined;
      } else {
        this.entries.set(index, { cur: ZERO, fresh: true, durable: undefined, durableSha: undefined });
      }
      return Promise.resolve();
    }
    let slot: number;
    let prevCur: number | undefined;
    let prevFresh = false;
    let prevSha: Promise<string | undefined> | undefined;
    let offset = 0;
    let length = BLOCK_SIZE;
    let isNewSlot = false;
    if (e && e.fresh && e.cur !== ZERO) {
      slot = e.cur;
      if (changed) ({ offset, length } = changed);
    } else {
      slot = this.allocSlot();
      isNewSlot = true;
      if (e) {
        prevCur = e.cur;
        prevFresh = e.fresh;
        prevSha = e.freshSha;
        e.cur = slot;
        e.fresh = true;
      } else {
        this.entries.set(index, { cur: slot, fresh: true, durable: undefined, durableSha: undefined });
      }
    }
    // The slot's checksum is known when this write covers all of it and the caller knew `full`'s.
    const known = offset === 0 && length === BLOCK_SIZE ? sha : undefined;
    const fh = this.blocksFh!;
    const p = writeFully(fh, full, offset, length, slot * BLOCK_SIZE + offset).catch((err: unknown) => {
      // A failed write into a new slot leaves the block as it was (ENOSPC, EIO) ...
      const ent = this.entries.get(index);
      if (isNewSlot && ent && ent.cur === slot) {
        if (!ent.fresh) {
          // ... unless a flush already sealed the slot: it must not record it, so stop here.
          this.failed ??= new JournalError(`journal ${this.dir}: a write failed during a flush: ${(err as Error).message}`, { cause: err });
        } else {
          if (prevCur === undefined) this.entries.delete(index);
          else {
            ent.cur = prevCur;
            ent.fresh = prevFresh;
            ent.freshSha = prevSha;
          }
          this.freeSlot(slot);
        }
      }
      throw err;
    });
    // Only a write that succeeded vouches for the hash; after a failure the flush reads the slot back.
    this.entries.get(index)!.freshSha = known ? p.then(() => known, () => undefined) : undefined;
    this.inflight.add(p);
    void p.then(() => this.inflight.delete(p), () => this.inflight.delete(p));
    return p;
  }

  /** Makes every completed write durable (see the contract above). */
  flush(): Promise<void> {
    if (this.readOnly) return Promise.resolve();
    const run = this.flushChain.then(() => this.flushOnce());
    this.flushChain = run.catch(() => {});
    return run;
  }

  private async flushOnce(): Promise<void> {
    this.assertUsable();
    const batch: { index: number; entry: Entry; slot: number; sha: string; known: Promise<string | undefined> | undefined }[] = [];
    for (const [index, entry] of this.entries) {
      if (!entry.fresh) continue;
      entry.fresh = false; // sealed: later writes to this block go to a new slot
      batch.push({ index, entry, slot: entry.cur, sha: ZERO_BLOCK_SHA256, known: entry.freshSha });
      entry.freshSha = undefined;
    }
    if (batch.length === 0) return;
    try {
      // Writes that started before sealing may still be writing into sealed slots.
      await Promise.allSettled([...this.inflight]);
      if (this.failed) throw this.failed;
      const data = batch.filter((item) => item.slot !== ZERO);
      for (const item of data) {
        const sha = item.known ? await item.known : undefined; // settles with its write (awaited above)
        if (sha !== undefined) item.sha = sha;
        else item.known = undefined;
      }
      // The rest: read back and hashed, a few at a time.
      const rest = data.filter((item) => item.known === undefined);
      let next = 0;
      await Promise.all(Array.from({ length: Math.min(FLUSH_HASH_CONCURRENCY, rest.length) }, async () => {
        const buf = Buffer.allocUnsafe(BLOCK_SIZE);
        while (next < rest.length) {
          const item = rest[next++]!;
          await readFully(this.blocksFh!, buf, item.slot * BLOCK_SIZE);
          item.sha = await sha256Base64Async(buf);
        }
      }));
      if (this.failed) throw this.failed;
      if (data.length > 0) await this.blocksFh!.datasync();
      const buf = Buffer.alloc((batch.length + 1) * RECORD_SIZE);
      batch.forEach((item, i) => {
        encodeRecord(buf, i * RECORD_SIZE, {
          type: TYPE_BLOCK, seq: ++this.seq, blockIndex: item.index, slot: item.slot === ZERO ? NO_SLOT : item.slot, sha256: item.sha,
        });
      });
      encodeRecord(buf, batch.length * RECORD_SIZE, { type: TYPE_SYNC, seq: ++this.seq, blockIndex: batch.length, slot: 0, sha256: '' });
      await writeFully(this.indexFh!, buf, 0, buf.length, this.indexSize);
      this.indexSize += buf.length;
      this.indexRecords += batch.length + 1;
      await this.indexFh!.datasync();
    } catch (err) {
      this.failed = new JournalError(`journal ${this.dir} could not be made durable: ${(err as Error).message}`, { cause: err });
      this.logger.error({ err, dir: this.dir }, 'journal flush failed; the journal is unusable until reopened');
      throw this.failed;
    }
    // Durable: the slots these records superseded may be reused now.
    for (const { entry, slot, sha } of batch) {
      const old = entry.durable;
      if (old !== undefined && old !== ZERO && old !== slot) this.freeSlot(old);
      entry.durable = slot;
      entry.durableSha = sha;
    }
    if (this.needsCompaction()) await this.compact();
  }

  private needsCompaction(): boolean {
    return this.indexRecords > Math.max(this.compactThreshold, 4 * this.entries.size);
  }

  /** Rewrites index.log with one record per durable block (atomically: tmp, fsync, rename). */
  private async compact(): Promise<void> {
    const durable = [...this.entries].filter(([, e]) => e.durable !== undefined).sort((a, b) => a[0] - b[0]);
    const buf = Buffer.alloc((durable.length + 1) * RECORD_SIZE);
    durable.forEach(([index, e], i) => {
      encodeRecord(buf, i * RECORD_SIZE, {
        type: TYPE_BLOCK, seq: ++this.seq, blockIndex: index, slot: e.durable === ZERO ? NO_SLOT : e.durable!, sha256: e.durableSha!,
      });
    });
    encodeRecord(buf, durable.length * RECORD_SIZE, { type: TYPE_SYNC, seq: ++this.seq, blockIndex: durable.length, slot: 0, sha256: '' });
    const tmp = join(this.dir, `.${INDEX_FILE}.compact`);
    const fh = await open(tmp, 'w', 0o600);
    try {
      await writeFully(fh, buf, 0, buf.length, 0);
      await fh.sync();
    } catch (err) {
      await fh.close();
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await rename(tmp, join(this.dir, INDEX_FILE));
    await fsyncDir(this.dir);
    await this.indexFh?.close();
    this.indexFh = fh;
    this.indexSize = buf.length;
    this.indexRecords = durable.length + 1;
  }

  // ---- lifecycle ----

  /** Flushes (when writable and usable) and closes the files; the journal stays on disk. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.readOnly && !this.failed && this.blocksFh) await this.flush();
    } finally {
      this.closed = true;
      await this.metaChain;
      await this.blocksFh?.close().catch(() => {});
      await this.indexFh?.close().catch(() => {});
      this.blocksFh = undefined;
      this.indexFh = undefined;
      await this.lock?.release().catch(() => {});
      this.lock = undefined;
    }
  }

  /** Closes the files without flushing: what kill -9 leaves behind (tests); the kernel drops the lock. */
  async abandon(): Promise<void> {
    this.closed = true;
    await this.blocksFh?.close().catch(() => {});
    await this.indexFh?.close().catch(() => {});
    this.blocksFh = undefined;
    this.indexFh = undefined;
    await this.lock?.release().catch(() => {});
    this.lock = undefined;
  }

  /** After a completed commit: deletes blocks.dat and index.log (meta.json keeps the child id). */
  async dropData(): Promise<void> {
    this.assertWritable();
    await this.flushChain;
    await this.blocksFh?.close().catch(() => {});
    await this.indexFh?.close().catch(() => {});
    this.blocksFh = undefined;
    this.indexFh = undefined;
    await rm(join(this.dir, BLOCKS_FILE), { force: true });
    await rm(join(this.dir, INDEX_FILE), { force: true });
    await fsyncDir(this.dir);
    this.closed = true;
    await this.lock?.release().catch(() => {});
    this.lock = undefined;
  }

  /** Closes without flushing and deletes the whole journal directory. */
  async destroy(): Promise<void> {
    this.closed = true;
    await this.blocksFh?.close().catch(() => {});
    await this.indexFh?.close().catch(() => {});
    this.blocksFh = undefined;
    this.indexFh = undefined;
    await rm(this.dir, { recursive: true, force: true });
    this.lock = undefined;
  }

  // ---- slots ----

  private allocSlot(): number {
    return this.freeSlots.pop() ?? this.nextSlot++;
  }

  private freeSlot(slot: number): void {
    if (this.pins.has(slot)) this.freeWhenUnpinned.add(slot);
    else this.freeSlots.push(slot);
  }

  private async readSlot(slot: number, into?: Buffer): Promise<Buffer> {
    this.pins.set(slot, (this.pins.get(slot) ?? 0) + 1);
    try {
      const buf = into ?? Buffer.allocUnsafe(BLOCK_SIZE);
      await readFully(this.blocksFh!, buf, slot * BLOCK_SIZE);
      return buf;
    } finally {
      const n = this.pins.get(slot)! - 1;
      if (n > 0) this.pins.set(slot, n);
      else {
        this.pins.delete(slot);
        if (this.freeWhenUnpinned.delete(slot)) this.freeSlots.push(slot);
      }
    }
  }

  private assertUsable(): void {
    if (this.failed) throw this.failed;
    if (this.closed) throw new JournalError(`journal ${this.dir} is closed`);
  }

  private assertWritable(): void {
    this.assertUsable();
    if (this.readOnly) throw new JournalError(`journal ${this.dir} is opened read-only`);
  }
}

// ---- helpers ----

async function openMaybe(path: string, readOnly: boolean): Promise<FileHandle | undefined> {
  try {
    return await open(path, readOnly ? 'r' : 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && readOnly) return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      // A committed journal whose data was dropped, or files lost: start them empty.
      const fh = await open(path, 'w+', 0o600);
      return fh;
    }
    throw err;
  }
}

interface Replay {
  durable: Map<number, IndexRecord>;
  stats: ReplayStats;
  /** Offset just past the last sync record. */
  validEnd: number;
  maxSeq: number;
}

function emptyReplay(): Replay {
  return { durable: new Map(), stats: { records: 0, badRecords: 0, tornBytes: 0, batches: 0 }, validEnd: 0, maxSeq: 0 };
}

/** Reads index.log: the last record per block of every batch closed by a sync record. */
async function replayIndex(fh: FileHandle): Promise<Replay> {
  const out = emptyReplay();
  const size = (await fh.stat()).size;
  const pending = new Map<number, IndexRecord>();
  let pendingBad = 0;
  const chunk = Buffer.allocUnsafe(RECORD_SIZE * 16_384);
  let pos = 0;
  while (pos + RECORD_SIZE <= size) {
    const want = Math.min(chunk.length, Math.floor((size - pos) / RECORD_SIZE) * RECORD_SIZE);
    const { bytesRead } = await fh.read(chunk, 0, want, pos);
    const usable = Math.floor(bytesRead / RECORD_SIZE) * RECORD_SIZE;
    if (usable === 0) break;
    for (let off = 0; off < usable; off += RECORD_SIZE) {
      const rec = decodeRecord(chunk, off);
      if (!rec) {
        pendingBad++;
        continue;
      }
      out.maxSeq = Math.max(out.maxSeq, rec.seq);
      if (rec.type === TYPE_BLOCK) {
        pending.set(rec.blockIndex, rec);
        continue;
      }
      for (const [index, r] of pending) out.durable.set(index, r);
      out.stats.records += pending.size + 1;
      out.stats.badRecords += pendingBad;
      out.stats.batches++;
      pending.clear();
      pendingBad = 0;
      out.validEnd = pos + off + RECORD_SIZE;
    }
    pos += usable;
  }
  out.stats.tornBytes = size - out.validEnd;
  return out;
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new JournalError(`short read in journal at ${position + done}`);
    done += bytesRead;
  }
}

async function writeFully(fh: FileHandle, buf: Buffer, offset: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await fh.write(buf, offset + done, length - done, position + done);
    done += bytesWritten;
  }
}
