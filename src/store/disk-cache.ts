/**
 * DiskCache: a persistent cache of verified 512 KiB blocks in one directory, shared by every
 * mount and export of this machine that names it (`--disk-cache DIR`).
 *
 * Layout (DIR 0700; every file 0600):
 *   DIR/index.sqlite (+ -wal, -shm)   the index (disk-cache-index.ts)
 *   DIR/blobs/XX/<sha256 hex>-<id>    one file per distinct block content, XX = first hex byte
 *   DIR/tmp/<id>.tmp                  a blob being written
 * One file per block rather than slab files: a block is written once (tmp file, rename) and
 * never modified, so a torn write can only ever be a tmp file or a file whose SHA-256 fails; the
 * filesystem does the space management (eviction is an unlink, no free lists, no compaction);
 * several processes never write the same file (the blob id is in the name); and a 512 KiB block
 * costs one open/read/close, a few microseconds beside the read itself. Blobs are named by content,
 * so equal blocks of several snapshots (a lineage, zero-filled blocks) are stored once.
 *
 * Contract:
 * - `get` returns a block only after checking its length and its SHA-256 against the index (the
 *   service's checksum, stored at `put`). A mismatch, a short file or a missing file drops the
 *   blob (and every block row naming it) and returns null: the caller refetches. Never served.
 * - `put` stores a block the caller verified against the service's SHA-256. The index row is
 *   created WRITING before the file is written and turns READY after the rename, so a crash
 *   (kill -9) at any point leaves either no row, a WRITING row (cleaned at the next open: its
 *   writer is dead), or a READY row with a complete file. Files are not fsynced: a power cut may
 *   leave a READY row with a torn file, which verification catches.
 * - Size: the bytes of WRITING and READY blobs never exceed `sizeBytes` after a `put` returns
 *   (blobs being unlinked may exceed it for milliseconds). Eviction removes the least recently
 *   used blobs; uses are recorded in memory and written to the index every second and at close.
 * - Several processes share one DIR: the index serialises writers (see disk-cache-index.ts);
 *   a blob another process is writing is not served until READY; an evicted blob may vanish
 *   between lookup and open, which is a plain miss.
 * - Opening costs no scan: the few non-READY rows are cleaned (WRITING rows of dead writers, or
 *   older than 10 minutes; DROPPING rows), the rest is untouched.
 */
import { chmodSync, close as fsCloseCb, mkdirSync, open as fsOpenCb, read as fsReadCb, readdirSync, statSync, unlinkSync } from 'node:fs';
import { promisify } from 'node:util';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256, sha256Async } from '../ebs/checksum.js';
import { BLOCK_SIZE } from '../ebs/constants.js';
import type { Priority } from '../ebs/limiter.js';
import { silentLogger, type Logger } from '../util/log.js';
import { processIsAlive } from '../util/process.js';
import { StatKey, type Stats } from '../util/stats.js';
import { BlobState, DiskCacheIndex } from './disk-cache-index.js';

export const DEFAULT_DISK_CACHE_BYTES = 10 * 1024 ** 3;
/** A WRITING row older than this is abandoned whatever its writer's pid says (pid reuse). */
const STALE_WRITE_MS = 10 * 60_000;
const TOUCH_FLUSH_MS = 1_000;
/** Blobs evicted at once beyond the need, so eviction runs once per many puts. */
const EVICT_BATCH = 16;
/** Puts waiting for their file write: beyond this, new blocks are not cached (memory bound). */
const MAX_PENDING_PUTS = 128;

export interface DiskCacheOptions {
  dir: string;
  sizeBytes?: number;
  logger?: Logger;
  now?: () => number;
}

export interface CachedBlock {
  data: Buffer;
  /** Raw SHA-256 of data (the service's checksum). */
  sha256: Buffer;
}

export interface DiskCacheCounters {
  hits: number;
  misses: number;
  corrupt: number;
  writes: number;
  evictions: number;
  skipped: number;
}

export type PutResult = 'stored' | 'linked' | 'skipped';

export class DiskCache {
  readonly dir: string;
  readonly sizeBytes: number;
  readonly counters: DiskCacheCounters = { hits: 0, misses: 0, corrupt: 0, writes: 0, evictions: 0, skipped: 0 };
  private readonly index: DiskCacheIndex;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly touched = new Set<number>();
  private readonly timer: NodeJS.Timeout;
  private pendingPuts = 0;
  private closed = false;

  private constructor(opts: DiskCacheOptions, index: DiskCacheIndex) {
    this.dir = opts.dir;
    this.sizeBytes = Math.max(0, opts.sizeBytes ?? DEFAULT_DISK_CACHE_BYTES);
    this.logger = opts.logger ?? silentLogger;
    this.now = opts.now ?? Date.now;
    this.index = index;
    this.timer = setInterval(() => this.flushTouches(), TOUCH_FLUSH_MS);
    this.timer.unref();
  }

  /** Opens (creating when needed) the cache in `opts.dir`. Throws a plain Error naming the problem. */
  static open(opts: DiskCacheOptions): DiskCache {
    const dir = opts.dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
    chmodSync(dir, 0o700);
    for (const sub of ['blobs', 'tmp']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
    const blobs = join(dir, 'blobs');
    if (readdirSync(blobs).length < 256) {
      for (let i = 0; i < 256; i++) mkdirSync(join(blobs, i.toString(16).padStart(2, '0')), { recursive: true, mode: 0o700 });
    }
    const cache = new DiskCache(opts, new DiskCacheIndex(join(dir, 'index.sqlite')));
    cache.cleanUnready();
    return cache;
  }

  /** Bytes of the blobs the index holds (WRITING and READY). */
  get storedBytes(): number {
    return this.index.bytes();
  }

  /** Distinct blocks stored (each blob is one 512 KiB block). */
  get storedBlocks(): number {
    return Math.round(this.index.bytes() / BLOCK_SIZE);
  }

  /** The index key of a snapshot; records its volume size and that it was used now. */
  snapshotKey(snapshotId: string, volumeGiB: number): number {
    return this.index.write(() => this.index.snapshotKey(snapshotId, volumeGiB, this.now()));
  }

  /** True when block `index` of snapshot `snap` has a READY entry (not verified: `get` does). */
  has(snap: number, index: number): boolean {
    return this.index.lookup(snap, index) !== undefined;
  }

  /** The verified block, or null (absent, or dropped because it failed verification). */
  async get(snap: number, index: number, priority: Priority = 'demand', stats?: Stats): Promise<CachedBlock | null> {
    if (this.closed) return null;
    const row = this.index.lookup(snap, index);
    if (!row) {
      this.counters.misses++;
      return null;
    }
    let data: Buffer;
    try {
      data = await readWhole(this.blobPath(row.hash, row.id));
    } catch (err) {
      this.counters.misses++;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // Evicted by another process meanwhile (then already DROPPING: nothing to do), or lost.
        this.dropIfReady(row.id, row.hash);
      } else {
        this.logger.warn({ block: index, err: (err as Error).message }, 'disk cache read failed');
      }
      return null;
    }
    const ok = data.length === BLOCK_SIZE && (priority === 'demand' ? sha256(data) : await sha256Async(data)).equals(row.hash);
    if (!ok) {
      this.counters.corrupt++;
      this.counters.misses++;
      stats?.inc(StatKey.diskCorrupt);
      this.logger.warn({ block: index, blob: row.id, length: data.length }, 'disk cache entry failed verification: dropped, refetching');
      await this.drop(row.id, row.hash);
      return null;
    }
    this.counters.hits++;
    this.touched.add(row.id);
    return { data, sha256: row.hash };
  }

  /**
   * Records that block `index` of `snap` holds the content `hash` when a READY blob has it
   * (no file written). True when linked.
   */
  link(snap: number, index: number, hash: Buffer): boolean {
    if (this.closed) return false;
    return this.index.write(() => {
      const blob = this.index.blobByHash(hash);
      if (!blob || blob.state !== BlobState.READY) return false;
      this.index.setBlock(snap, index, blob.id);
      this.touched.add(blob.id);
      return true;
    });
  }

  /**
   * Stores a verified block (`hash` = its raw SHA-256, as the service gave it). Resolves once
   * the block is served by `get` (or was skipped: cache closed, full of blobs being written, too
   * many puts pending); never rejects. `data` must not change until it resolves.
   */
  async put(snap: number, index: number, data: Buffer, hash: Buffer): Promise<PutResult> {
    if (this.closed || this.sizeBytes < BLOCK_SIZE || data.length !== BLOCK_SIZE || this.pendingPuts >= MAX_PENDING_PUTS) {
      this.counters.skipped++;
      return 'skipped';
    }
    this.pendingPuts++;
    try {
      return await this.putNow(snap, index, data, hash);
    } catch (err) {
      this.counters.skipped++;
      this.logger.warn({ block: index, err: (err as Error).message }, 'disk cache write failed');
      return 'skipped';
    } finally {
      this.pendingPuts--;
    }
  }

  private async putNow(snap: number, index: number, data: Buffer, hash: Buffer): Promise<PutResult> {
    const now = this.now();
    const plan = this.index.write(() => {
      const blob = this.index.blobByHash(hash);
      if (blob) {
        if (blob.state === BlobState.DROPPING) return { kind: 'skipped' as const };
        // READY, or WRITING by someone else: the row names it; it is served once READY.
        this.index.setBlock(snap, index, blob.id);
        if (blob.state === BlobState.READY) this.touched.add(blob.id);
        return { kind: 'linked' as const };
      }
      const victims = this.makeRoom(data.length);
      if (victims === null) return { kind: 'skipped' as const };
      const id = this.index.insertBlob(hash, data.length, now, process.pid);
      this.index.addBytes(data.length);
      this.index.setBlock(snap, index, id);
      return { kind: 'write' as const, id, victims };
    });
    if (plan.kind !== 'write') {
      if (plan.kind === 'skipped') this.counters.skipped++;
      return plan.kind;
    }
    await this.removeFiles(plan.victims);
    const tmp = join(this.dir, 'tmp', `${plan.id}.tmp`);
    try {
      await writeWhole(tmp, data);
      await rename(tmp, this.blobPath(hash, plan.id));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      await this.drop(plan.id, hash);
      throw err;
    }
    const ready = this.index.write(() => this.index.markReady(plan.id));
    if (!ready) {
      // Dropped meanwhile (another process judged it abandoned): remove the file we wrote.
      await unlink(this.blobPath(hash, plan.id)).catch(() => undefined);
      this.counters.skipped++;
      return 'skipped';
    }
    this.counters.writes++;
    return 'stored';
  }

  /**
   * Inside a write transaction: marks enough least recently used blobs DROPPING for `size` more
   * bytes to fit; returns them (their files are unlinked after the transaction), or null when
   * they cannot be freed (everything else is being written).
   */
  private makeRoom(size: number): { id: number; hash: Buffer }[] | null {
    const excess = this.index.bytes() + size - this.sizeBytes;
    if (excess <= 0) return [];
    const victims = this.index.oldest(Math.ceil(excess / BLOCK_SIZE) + EVICT_BATCH);
    let freed = 0;
    const out: { id: number; hash: Buffer }[] = [];
    for (const v of victims) {
      if (freed >= excess && out.length >= 1) break;
      freed += this.index.markDropping(v.id);
      out.push({ id: v.id, hash: v.hash });
    }
    if (freed < excess) return null;
    this.counters.evictions += out.length;
    return out;
  }

  private async removeFiles(victims: { id: number; hash: Buffer }[]): Promise<void> {
    if (victims.length === 0) return;
    await Promise.all(victims.map((v) => unlink(this.blobPath(v.hash, v.id)).catch(() => undefined)));
    this.index.write(() => {
      for (const v of victims) this.index.deleteBlob(v.id);
    });
  }

  /** Drops a blob: DROPPING, unlink, delete its rows. */
  private async drop(id: number, hash: Buffer): Promise<void> {
    this.index.write(() => this.index.markDropping(id));
    await this.removeFiles([{ id, hash }]);
  }

  private dropIfReady(id: number, hash: Buffer): void {
    const dropped = this.index.write(() => {
      const row = this.index.blobByHash(hash);
      if (!row || row.id !== id || row.state !== BlobState.READY) return false;
      this.index.markDropping(id);
      this.index.deleteBlob(id);
      return true;
    });
    if (dropped) this.logger.warn({ blob: id }, 'disk cache entry had no file: dropped');
  }

  /** Abandoned WRITING rows (writer dead, or too old) and leftover DROPPING rows. */
  private cleanUnready(): void {
    const now = this.now();
    const doomed = this.index.write(() => {
      const out: { id: number; hash: Buffer }[] = [];
      for (const row of this.index.unready()) {
        if (row.state === BlobState.WRITING) {
          const alive = row.owner !== null && processIsAlive(row.owner);
          if (alive && now - row.created < STALE_WRITE_MS) continue;
          this.index.markDropping(row.id);
        }
        out.push({ id: row.id, hash: row.hash });
      }
      return out;
    });
    for (const v of doomed) {
      for (const path of [this.blobPath(v.hash, v.id), join(this.dir, 'tmp', `${v.id}.tmp`)]) {
        try {
          // Sync on purpose: only at open, for the few entries an interrupted writer left.
          unlinkSync(path);
        } catch {
          /* absent */
        }
      }
    }
    if (doomed.length) {
      this.index.write(() => {
        for (const v of doomed) this.index.deleteBlob(v.id);
      });
      this.logger.info({ entries: doomed.length }, 'disk cache: removed entries left by an interrupted writer');
    }
  }

  /** Most recently used other cached snapshots of that volume size (lineage candidates). */
  recentSnapshots(volumeGiB: number, exceptSnapshotId: string, limit: number): string[] {
    return this.index.recentSnapshots(volumeGiB, exceptSnapshotId, limit);
  }

  findSnapshotKey(snapshotId: string): number | undefined {
    return this.index.findSnapshotKey(snapshotId);
  }

  markUnrelated(a: string, b: string): void {
    this.index.write(() => this.index.markUnrelated(a, b));
  }

  isUnrelated(a: string, b: string): boolean {
    return this.index.isUnrelated(a, b);
  }

  /** Entries (block rows) of one snapshot: O(its entries), for status and tests. */
  blockCount(snap: number): number {
    return this.index.blockCount(snap);
  }

  blobPath(hash: Buffer, id: number): string {
    const hex = hash.toString('hex');
    return join(this.dir, 'blobs', hex.slice(0, 2), `${hex}-${id}`);
  }

  flushTouches(): void {
    if (this.touched.size === 0 || this.closed) return;
    const ids = [...this.touched];
    this.touched.clear();
    try {
      this.index.write(() => this.index.touch(ids, this.now()));
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'disk cache: recording uses failed');
    }
  }

  close(): void {
    if (this.closed) return;
    this.flushTouches();
    this.closed = true;
    clearInterval(this.timer);
    this.index.close();
  }
}

/** The file's first 512 KiB (shorter when the file is). Callback fs: no FileHandle objects on the hot path. */
async function readWhole(path: string): Promise<Buffer> {
  const fd = await fsOpen(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(BLOCK_SIZE);
    let got = 0;
    while (got < BLOCK_SIZE) {
      const bytesRead = await fsRead(fd, buf, got, BLOCK_SIZE - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === BLOCK_SIZE ? buf : buf.subarray(0, got);
  } finally {
    await fsClose(fd);
  }
}

const fsOpen = promisify(fsOpenCb);
const fsClose = promisify(fsCloseCb);
function fsRead(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fsReadCb(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

async function writeWhole(path: string, data: Buffer): Promise<void> {
  const fh = await open(path, 'wx', 0o600);
  try {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await fh.write(data, done, data.length - done, done);
      done += bytesWritten;
    }
  } finally {
    await fh.close();
  }
}
