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
 *   hashes the sealed slots, then in two phases: (1) fdatasync of blocks.dat, and the batch's
 *   block records appended to index.log and fdatasync'ed; (2) the batch's sync record appended
 *   and fdatasync'ed. A sync record on disk therefore proves that its batch's records and data
 *   were durable before it was written: anything damaged before the last sync record is real
 *   damage, never a torn write. Only then are the slots those records superseded freed for
 *   reuse. Flushes are serialized; a flush with nothing fresh does no I/O. A failed write or
 *   fsync poisons the journal (every later call throws): what is on disk is still consistent,
 *   and reopening recovers it.
 * - Hashing: a write of the whole slot may bring the SHA-256 of its data (`sha`, which the caller
 *   computed anyway, e.g. while assembling the block from pieces); the flush records it once that
 *   write succeeded. Every other sealed slot is read back and hashed by the flush (a few at a
 *   time, in the threadpool). Either way a record names exactly the bytes its slot holds.
 * - Writes not yet flushed are in blocks.dat (never only in memory) but not in the index: after a
 *   crash they are lost, as the kernel was never told they were durable.
 * - open() replays index.log. Everything after the last valid sync record is an unsynced tail
 *   (never acknowledged) and is discarded. Everything before it must be intact: every record
 *   readable (magic, CRC), sequence numbers consecutive, each sync record's count equal to its
 *   batch's block records, every slot inside blocks.dat and used once, every block inside the
 *   volume. Otherwise the journal is damaged: open() throws JournalDamagedError naming the damage
 *   (for reading, writing and commit alike; `journals` lists it as damaged) — an acknowledged
 *   write is never dropped silently. meta.json's `damage` (set when a block's data failed its
 *   check) is damage too. A writable open then truncates the tail, drops unreferenced slots past
 *   the last used one, and rewrites (compacts) the index when it holds much dead history.
 * - Salvage (`open(dir, { salvage: true })`, for `ebsmount commit --salvage`): applies every
 *   readable record, reads back and verifies every block's data, and keeps only the blocks whose
 *   newest record is readable and whose data matches its SHA-256; the others are lost (listed in
 *   `salvage` and meta.json's `salvaged`; a block named only by an unreadable record is lost as
 *   well when the record still shows its index). The index is then rewritten clean.
 * - Reads of durable blocks verify the data against the recorded SHA-256 (JournalDamagedError,
 *   and meta.json's `damage` is set): a damaged block is never served.
 * - Compaction writes a new index (tmp, fsync), renames it over index.log and fsyncs the
 *   directory. A failure before the rename leaves the old index in use; a failure in the rename,
 *   the directory fsync or the switch of handles poisons the journal, so no append can ever go
 *   to an index that is no longer index.log.
 * - Files go through a JournalFs (journal-fs.ts): the real filesystem, or a test double.
 * - Memory: one small entry per dirty block (slot numbers and a base64 SHA-256); block data is
 *   read back from blocks.dat on demand. A slot being read is pinned and not reused until the
 *   read ends.
 * - One process at a time (journal-lock.ts); `readOnly` opens (listing) take no lock and write
 *   nothing.
 */
import { join } from 'node:path';
import type { Tag } from '../ebs/api.js';
import { isAllZero, sha256Base64Async } from '../ebs/checksum.js';
import { BLOCK_SIZE, ZERO_BLOCK_SHA256, blocksInVolume } from '../ebs/constants.js';
import { silentLogger, type Logger } from '../util/log.js';
import {
  NO_SLOT, RECORD_MAGIC, RECORD_SIZE, TYPE_BLOCK, TYPE_SYNC, decodeRecord, encodeRecord, type IndexRecord,
} from './journal-format.js';
import { nodeJournalFs, readFully, writeFileAtomicFs, writeFully, type JournalFile, type JournalFs } from './journal-fs.js';
import type { JournalLock } from './journal-lock.js';
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
  /** CompleteSnapshot answered pending: the child is kept (and the journal with it) until it is seen completed. */
  completionRequested?: boolean;
  /** Damage found after open (a block whose data failed its SHA-256 check): the journal refuses to open until salvaged. */
  damage?: string;
  /** What a salvage left out. */
  salvaged?: { at: string; lostBlocks: number[]; unreadableRecords: number };
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
  /** Bytes after the last sync record (unsynced tail). */
  tornBytes: number;
  batches: number;
}

/** What a salvage kept out of the journal. */
export interface SalvageReport {
  /** Blocks whose newest content could not be trusted: the child keeps the parent's data there. */
  lostBlocks: number[];
  /** Index records that could not be read at all (their block, when known, is in lostBlocks). */
  unreadableRecords: number;
  /** What was wrong, one line each. */
  damage: string[];
}

export interface JournalOpenOptions {
  readOnly?: boolean;
  logger?: Logger;
  /** Compact the index when it holds more than max(this, 4 × dirty blocks) records. Default 65,536. */
  compactThreshold?: number;
  /** Open a damaged journal keeping only what is intact (see the contract). Writable opens only. */
  salvage?: boolean;
  /** The file layer (tests). Default: the real filesystem. */
  fs?: JournalFs;
}

export class JournalError extends Error {
  override readonly name: string = 'JournalError';
}

/** The journal holds damage that would lose acknowledged writes; `damage` lists it. */
export class JournalDamagedError extends JournalError {
  override readonly name = 'JournalDamagedError';
  constructor(readonly dir: string, readonly damage: string[]) {
    super(
      `journal ${dir} is damaged (${damage.slice(0, 3).join('; ')}${damage.length > 3 ? `; and ${damage.length - 3} more` : ''}): `
      + `using it would lose acknowledged writes; commit its intact blocks with: ebsmount commit --journal ${dir} --salvage`,
    );
  }
}

export class Journal {
  readonly dir: string;
  readonly readOnly: boolean;
  readonly replayStats: ReplayStats;
  private metaValue: JournalMeta;
  private readonly logger: Logger;
  private readonly entries: Map<number, Entry>;
  private readonly totalBlocks: number;
  private readonly fs: JournalFs;
  /** Set by a salvage open: what was left out. */
  salvage: SalvageReport | undefined;
  private blocksFh: JournalFile | undefined;
  private indexFh: JournalFile | undefined;
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
    blocksFh?: JournalFile;
    indexFh?: JournalFile;
    fs: JournalFs;
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
    this.fs = init.fs;
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
  static async exists(dir: string, fs: JournalFs = nodeJournalFs): Promise<boolean> {
    return fs.exists(join(dir, META_FILE));
  }

  static async readMeta(dir: string, fs: JournalFs = nodeJournalFs): Promise<JournalMeta> {
    let text: string;
    try {
      text = await fs.readText(join(dir, META_FILE));
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
    const fs = opts.fs ?? nodeJournalFs;
    await fs.mkdirp(dir);
    if (await Journal.exists(dir, fs)) throw new JournalError(`${dir} already holds a journal`);
    const lock = await fs.lock(dir);
    try {
      for (const name of [BLOCKS_FILE, INDEX_FILE]) {
        const fh = await fs.open(join(dir, name), 'w');
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
      await writeFileAtomicFs(fs, dir, META_FILE, JSON.stringify(meta, null, 2) + '\n');
      await fs.fsyncDir(join(dir, '..')).catch(() => {});
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
    const fs = opts.fs ?? nodeJournalFs;
    if (opts.salvage && readOnly) throw new RangeError('a salvage open is a writable open');
    const meta = await Journal.readMeta(dir, fs);
    const lock = readOnly ? undefined : await fs.lock(dir);
    try {
      return await Journal.load(dir, meta, readOnly, logger, opts.compactThreshold ?? 65_536, fs, opts.salvage ?? false, lock);
    } catch (err) {
      await lock?.release();
      throw err;
    }
  }

  private static async load(
    dir: string, meta: JournalMeta, readOnly: boolean, logger: Logger, compactThreshold: number, fs: JournalFs, salvage: boolean,
    lock?: JournalLock,
  ): Promise<Journal> {
    const blocksPath = join(dir, BLOCKS_FILE);
    const indexPath = join(dir, INDEX_FILE);
    let indexFh: JournalFile | undefined;
    let blocksFh: JournalFile | undefined;
    try {
      indexFh = await openMaybe(fs, indexPath, readOnly);
      blocksFh = await openMaybe(fs, blocksPath, readOnly);
      const replay = indexFh ? await replayIndex(indexFh) : emptyReplay();
      const blocksSize = blocksFh ? await blocksFh.size() : 0;
      const slotsOnDisk = Math.floor(blocksSize / BLOCK_SIZE);
      const totalBlocks = blocksInVolume(meta.volumeSizeGiB);
      const damage = [...replay.damage];
      if (meta.damage) damage.push(meta.damage);
      const lost = new Set<number>(replay.lostHints);
      const slotOwner = new Map<number, number>();
      const entries = new Map<number, Entry>();
      for (const [index, rec] of replay.durable) {
        if (index >= totalBlocks) {
          damage.push(`block ${index} is outside the ${meta.volumeSizeGiB} GiB volume`);
          continue;
        }
        const slot = rec.slot === NO_SLOT ? ZERO : rec.slot;
        if (slot !== ZERO) {
          if (slot >= slotsOnDisk) {
            damage.push(`block ${index} is in slot ${slot}, past the end of ${BLOCKS_FILE}`);
            lost.add(index);
            continue;
          }
          if (slotOwner.has(slot)) damage.push(`slot ${slot} holds both block ${slotOwner.get(slot)} and block ${index}`);
          else slotOwner.set(slot, index);
        }
        entries.set(index, { cur: slot, fresh: false, durable: slot, durableSha: rec.sha256 });
      }
      if (damage.length > 0 && !salvage) throw new JournalDamagedError(dir, damage);
      let report: SalvageReport | undefined;
      if (salvage) {
        report = await salvageEntries(blocksFh!, entries, lost, damage, replay.stats.badRecords);
      }
      const used = new Set<number>();
      for (const e of entries.values()) if (e.cur !== ZERO) used.add(e.cur);
      const nextSlot = used.size === 0 ? 0 : Math.max(...used) + 1;
      const freeSlots: number[] = [];
      for (let s = nextSlot - 1; s >= 0; s--) if (!used.has(s)) freeSlots.push(s);
      const stats = replay.stats;
      if (stats.tornBytes > 0) logger.warn({ dir, ...stats }, 'journal replay discarded an unsynced tail (writes never acknowledged)');
      const journal = new Journal({
        dir, meta, readOnly, logger, entries, blocksFh, indexFh, fs,
        indexSize: replay.validEnd, indexRecords: replay.validEnd / RECORD_SIZE, seq: replay.lastSeq,
        nextSlot, freeSlots, replayStats: stats, compactThreshold, lock,
      });
      journal.salvage = report;
      if (!readOnly) {
        // Unreferenced slots past the last used one held writes that never became durable.
        if (blocksSize > nextSlot * BLOCK_SIZE) {
          await blocksFh!.truncate(nextSlot * BLOCK_SIZE);
          await blocksFh!.sync();
        }
        if (report || journal.needsCompaction()) await journal.compact();
        else if (stats.tornBytes > 0) {
          await indexFh!.truncate(replay.validEnd);
          await indexFh!.sync();
        }
        journal.assertUsable();
        if (report) {
          await journal.updateMeta({
            damage: undefined,
            salvaged: { at: new Date().toISOString(), lostBlocks: report.lostBlocks, unreadableRecords: report.unreadableRecords },
          });
          logger.warn({ dir, lostBlocks: report.lostBlocks, damage: report.damage }, 'journal salvaged');
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
      await writeFileAtomicFs(this.fs, this.dir, META_FILE, JSON.stringify(next, null, 2) + '\n');
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

  /**
   * The block's newest content; null when it is all zeros; undefined when not dirty. Durable
   * content is verified against its recorded SHA-256 (JournalDamagedError on a mismatch).
   */
  async readBlock(index: number): Promise<Buffer | null | undefined> {
    this.assertUsable();
    const e = this.entries.get(index);
    if (!e) return undefined;
    if (e.cur === ZERO) return null;
    const slot = e.cur;
    const buf = await this.readSlot(slot);
    await this.verifyRead(index, e, slot, buf);
    return buf;
  }

  /**
   * readBlock into the caller's 512 KiB buffer (no allocation): true when `buf` now holds the
   * block, null when it is all zeros (buf untouched), undefined when not dirty. `verify: false`
   * when the caller checks the SHA-256 itself (the committer).
   */
  async readBlockInto(index: number, buf: Buffer, opts: { verify?: boolean } = {}): Promise<true | null | undefined> {
    this.assertUsable();
    if (buf.length !== BLOCK_SIZE) throw new RangeError(`a block is ${BLOCK_SIZE} bytes, got ${buf.length}`);
    const e = this.entries.get(index);
    if (!e) return undefined;
    if (e.cur === ZERO) return null;
    const slot = e.cur;
    await this.readSlot(slot, buf);
    if (opts.verify !== false) await this.verifyRead(index, e, slot, buf);
    return true;
  }

  /** Checks a block read from its durable slot; a mismatch is recorded in meta.json and thrown. */
  private async verifyRead(index: number, e: Entry, slot: number, buf: Buffer): Promise<void> {
    if (e.fresh || slot !== e.durable || e.durableSha === undefined) return; // written since the last flush: not hashed yet
    if ((await sha256Base64Async(buf)) === e.durableSha) return;
    const what = `block ${index} in ${BLOCKS_FILE} (slot ${slot}) does not match its recorded SHA-256`;
    this.logger.error({ dir: this.dir, block: index, slot }, 'journal block damaged: not served');
    if (!this.readOnly && !this.metaValue.damage) await this.updateMeta({ damage: what }).catch(() => {});
    throw new JournalDamagedError(this.dir, [what]);
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
      const records = Buffer.alloc(batch.length * RECORD_SIZE);
      let seq = this.seq;
      batch.forEach((item, i) => {
        encodeRecord(records, i * RECORD_SIZE, {
          type: TYPE_BLOCK, seq: ++seq, blockIndex: item.index, slot: item.slot === ZERO ? NO_SLOT : item.slot, sha256: item.sha,
        });
      });
      const sync = Buffer.alloc(RECORD_SIZE);
      encodeRecord(sync, 0, { type: TYPE_SYNC, seq: ++seq, blockIndex: batch.length, slot: 0, sha256: '' });
      // Phase 1: the data and the batch's records durable (concurrently) ...
      const indexFh = this.indexFh!;
      await Promise.all([
        data.length > 0 ? this.blocksFh!.datasync() : Promise.resolve(),
        writeFully(indexFh, records, 0, records.length, this.indexSize).then(() => indexFh.datasync()),
      ]);
      // ... phase 2: only then the sync record that makes them count.
      await writeFully(indexFh, sync, 0, RECORD_SIZE, this.indexSize + records.length);
      await indexFh.datasync();
      this.seq = seq;
      this.indexSize += records.length + RECORD_SIZE;
      this.indexRecords += batch.length + 1;
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
    if (this.needsCompaction()) {
      // The batch is durable whatever happens here; a failure that leaves the old index in use
      // is only logged, one after the rename poisons the journal (compact()).
      await this.compact().catch((err: unknown) => this.logger.warn({ err, dir: this.dir }, 'journal compaction failed'));
    }
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
    const seqBefore = this.seq;
    const fh = await this.fs.open(tmp, 'w+');
    try {
      await writeFully(fh, buf, 0, buf.length, 0);
      await fh.sync();
    } catch (err) {
      // Nothing changed: the old index stays in use.
      this.seq = seqBefore;
      await fh.close().catch(() => {});
      await this.fs.unlink(tmp).catch(() => {});
      throw err;
    }
    try {
      await this.fs.rename(tmp, join(this.dir, INDEX_FILE));
      await this.fs.fsyncDir(this.dir);
      const old = this.indexFh;
      this.indexFh = fh;
      this.indexSize = buf.length;
      this.indexRecords = durable.length + 1;
      await old?.close();
    } catch (err) {
      // Which file is index.log now, and whether the rename is durable, is unknown: no append may
      // follow. Both files hold every durable record, so reopening recovers whichever survived.
      this.failed ??= new JournalError(`journal ${this.dir}: compaction of ${INDEX_FILE} failed: ${(err as Error).message}`, { cause: err });
      this.logger.error({ err, dir: this.dir }, 'journal compaction failed after writing the new index; the journal is unusable until reopened');
      if (this.indexFh !== fh) await fh.close().catch(() => {});
      throw this.failed;
    }
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
    await this.fs.remove(join(this.dir, BLOCKS_FILE));
    await this.fs.remove(join(this.dir, INDEX_FILE));
    await this.fs.fsyncDir(this.dir);
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
    await this.fs.remove(this.dir);
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

  /** Throws when the journal is poisoned (a failed write, fsync or compaction) or closed. */
  assertUsable(): void {
    if (this.failed) throw this.failed;
    if (this.closed) throw new JournalError(`journal ${this.dir} is closed`);
  }

  private assertWritable(): void {
    this.assertUsable();
    if (this.readOnly) throw new JournalError(`journal ${this.dir} is opened read-only`);
  }
}

// ---- helpers ----

async function openMaybe(fs: JournalFs, path: string, readOnly: boolean): Promise<JournalFile | undefined> {
  try {
    return await fs.open(path, readOnly ? 'r' : 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && readOnly) return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      // A committed journal whose data was dropped, or files lost: start them empty.
      return fs.open(path, 'w+');
    }
    throw err;
  }
}

interface Replay {
  durable: Map<number, IndexRecord>;
  stats: ReplayStats;
  /** Offset just past the last sync record. */
  validEnd: number;
  /** seq of the last sync record (appends continue from it). */
  lastSeq: number;
  /** What is wrong before the last sync record (empty: intact). */
  damage: string[];
  /** Blocks whose newest record before the last sync is unreadable but still names them. */
  lostHints: number[];
}

function emptyReplay(): Replay {
  return {
    durable: new Map(), stats: { records: 0, badRecords: 0, tornBytes: 0, batches: 0 }, validEnd: 0, lastSeq: 0, damage: [], lostHints: [],
  };
}

/** The block index an unreadable record probably names (magic and type still right), else undefined. */
function hintOf(buf: Buffer, off: number): number | undefined {
  if (buf.readUInt32LE(off) !== RECORD_MAGIC || buf.readUInt8(off + 4) !== TYPE_BLOCK) return undefined;
  return buf.readUInt32LE(off + 16);
}

/**
 * Reads index.log (contract at the top): the last record per block of every batch before the
 * last sync record, and every piece of damage found there. Readable records of a damaged batch
 * are applied too (a salvage uses them; a normal open refuses on any damage).
 */
async function replayIndex(fh: JournalFile): Promise<Replay> {
  const out = emptyReplay();
  const size = await fh.size();
  const whole = Math.floor(size / RECORD_SIZE) * RECORD_SIZE;
  // Pass 1: where the last readable sync record ends.
  const chunk = Buffer.allocUnsafe(RECORD_SIZE * 16_384);
  let lastSyncEnd = 0;
  for (let pos = 0; pos < whole; pos += chunk.length) {
    const want = Math.min(chunk.length, whole - pos);
    await readFully(fh, chunk.subarray(0, want), pos);
    for (let off = 0; off < want; off += RECORD_SIZE) {
      const rec = decodeRecord(chunk, off);
      if (rec?.type === TYPE_SYNC) lastSyncEnd = pos + off + RECORD_SIZE;
    }
  }
  // Pass 2: everything before it must be intact.
  const pending = new Map<number, IndexRecord>();
  const lost = new Set<number>();
  let inBatch = 0;
  let badInBatch = 0;
  let expectSeq: number | undefined;
  for (let pos = 0; pos < lastSyncEnd; pos += chunk.length) {
    const want = Math.min(chunk.length, lastSyncEnd - pos);
    await readFully(fh, chunk.subarray(0, want), pos);
    for (let off = 0; off < want; off += RECORD_SIZE) {
      const at = pos + off;
      const rec = decodeRecord(chunk, off);
      if (!rec) {
        out.stats.badRecords++;
        badInBatch++;
        const hint = hintOf(chunk, off);
        out.damage.push(`${INDEX_FILE} record ${at / RECORD_SIZE} (byte ${at}) is unreadable${hint !== undefined ? ` (probably block ${hint})` : ''}`);
        if (hint !== undefined) lost.add(hint);
        if (expectSeq !== undefined) expectSeq++;
        continue;
      }
      if (expectSeq !== undefined && rec.seq !== expectSeq) {
        out.damage.push(`${INDEX_FILE} record ${at / RECORD_SIZE} (byte ${at}) has sequence ${rec.seq}, expected ${expectSeq}: records are missing or out of place`);
      }
      expectSeq = rec.seq + 1;
      if (rec.type === TYPE_BLOCK) {
        pending.set(rec.blockIndex, rec);
        lost.delete(rec.blockIndex);
        inBatch++;
        continue;
      }
      if (badInBatch === 0 && rec.blockIndex !== inBatch) {
        out.damage.push(`the batch ending at ${INDEX_FILE} record ${at / RECORD_SIZE} holds ${inBatch} block records but its sync record says ${rec.blockIndex}`);
      }
      for (const [index, r] of pending) out.durable.set(index, r);
      out.stats.records += pending.size + 1;
      out.stats.batches++;
      pending.clear();
      inBatch = 0;
      badInBatch = 0;
      out.lastSeq = rec.seq;
    }
  }
  out.validEnd = lastSyncEnd;
  out.stats.tornBytes = size - lastSyncEnd;
  out.lostHints = [...lost];
  return out;
}

/**
 * Salvage: drops the blocks whose newest record was unreadable, verifies every other block's
 * data (one read each), drops those that fail, and gives a block sharing its slot with another
 * a slot of its own. Returns what was lost.
 */
async function salvageEntries(
  blocksFh: JournalFile, entries: Map<number, Entry>, lost: Set<number>, damage: string[], unreadableRecords: number,
): Promise<SalvageReport> {
  for (const index of lost) entries.delete(index);
  const buf = Buffer.allocUnsafe(BLOCK_SIZE);
  const owner = new Map<number, number>();
  let nextFree = 0;
  for (const e of entries.values()) if (e.cur !== ZERO) nextFree = Math.max(nextFree, e.cur + 1);
  let copied = false;
  for (const [index, e] of [...entries].sort((a, b) => a[0] - b[0])) {
    if (e.cur === ZERO) continue;
    try {
      await readFully(blocksFh, buf, e.cur * BLOCK_SIZE);
    } catch {
      damage.push(`block ${index} cannot be read from slot ${e.cur}`);
      entries.delete(index);
      lost.add(index);
      continue;
    }
    if ((await sha256Base64Async(buf)) !== e.durableSha) {
      damage.push(`block ${index} in ${BLOCKS_FILE} (slot ${e.cur}) does not match its recorded SHA-256`);
      entries.delete(index);
      lost.add(index);
      continue;
    }
    if (owner.has(e.cur)) {
      const slot = nextFree++;
      await writeFully(blocksFh, buf, 0, BLOCK_SIZE, slot * BLOCK_SIZE);
      e.cur = slot;
      e.durable = slot;
      copied = true;
    }
    owner.set(e.cur, index);
  }
  if (copied) await blocksFh.datasync();
  return { lostBlocks: [...lost].sort((a, b) => a - b), unreadableRecords, damage };
}
