/**
 * DiskCacheIndex: the SQLite index of a disk cache directory (better-sqlite3, WAL).
 *
 * Contract:
 * - Tables: `blobs` (one row per stored content: id, SHA-256, state, size, last use, writer pid),
 *   `blocks` ((snapshot, block index) → blob: several snapshots' blocks share one blob when their
 *   content is equal), `snapshots` (id, volume size, last use: lineage candidates), `unrelated`
 *   (pairs ListChangedBlocks refused), `meta` (schema version, total bytes of blob files).
 * - Blob states: WRITING (the file is being written by `owner`; not served), READY (served after
 *   verification), DROPPING (being unlinked; not served). Readers only ever see READY blobs. The
 *   byte total counts WRITING and READY blobs, and is updated in the same transaction as the rows,
 *   so every process sharing the directory agrees on it.
 * - Nothing here scans all rows: every query uses a key or an index (a partial index holds the
 *   few non-READY blobs, another orders READY blobs by last use for eviction), so opening an index
 *   of millions of entries costs the same as an empty one.
 * - Several processes may share the file: WAL (readers never block the writer), busy_timeout for
 *   writers, write transactions are short and BEGIN IMMEDIATE (no lock upgrades, no deadlock).
 * - Files: the database is created 0600 before SQLite opens it (SQLite gives its -wal and -shm
 *   files the database's mode).
 * - All calls are synchronous (better-sqlite3): each is tens of microseconds.
 */
import Database from 'better-sqlite3';
import { closeSync, openSync } from 'node:fs';

export const SCHEMA_VERSION = 1;

export const BlobState = { WRITING: 0, READY: 1, DROPPING: 2 } as const;
export type BlobStateValue = (typeof BlobState)[keyof typeof BlobState];

export interface BlobRow {
  id: number;
  hash: Buffer;
  state: BlobStateValue;
  size: number;
  owner: number | null;
  created: number;
}

export interface ReadyBlob {
  id: number;
  hash: Buffer;
}

/** How long writers wait for another process's write transaction (ms). */
const BUSY_TIMEOUT_MS = 15_000;

export class DiskCacheIndex {
  readonly db: Database.Database;
  private readonly q: ReturnType<typeof prepare>;

  constructor(path: string) {
    closeSync(openSync(path, 'a', 0o600));
    this.db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.migrate();
    this.q = prepare(this.db);
  }

  private migrate(): void {
    this.db.transaction(() => {
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS blobs (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          hash BLOB NOT NULL UNIQUE,
          state INTEGER NOT NULL,
          size INTEGER NOT NULL,
          last_used INTEGER NOT NULL,
          owner INTEGER,
          created INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS blobs_lru ON blobs(last_used) WHERE state = 1;
        CREATE INDEX IF NOT EXISTS blobs_unready ON blobs(state) WHERE state <> 1;
        CREATE TABLE IF NOT EXISTS snapshots (
          id INTEGER PRIMARY KEY,
          snapshot_id TEXT NOT NULL UNIQUE,
          volume_gib INTEGER NOT NULL,
          last_used INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS snapshots_mru ON snapshots(volume_gib, last_used);
        CREATE TABLE IF NOT EXISTS blocks (
          snap INTEGER NOT NULL,
          idx INTEGER NOT NULL,
          blob INTEGER NOT NULL,
          PRIMARY KEY (snap, idx)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS blocks_blob ON blocks(blob);
        CREATE TABLE IF NOT EXISTS unrelated (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;
        INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ${SCHEMA_VERSION}), ('bytes', 0);
      `);
      const v = (this.db.prepare(`SELECT value FROM meta WHERE key = 'schema'`).get() as { value: number }).value;
      if (v !== SCHEMA_VERSION) throw new Error(`unknown disk cache format (version ${v}, this ebsmount reads ${SCHEMA_VERSION})`);
    }).immediate();
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction (the write lock is taken up front). */
  write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  bytes(): number {
    return (this.q.getBytes.get() as { value: number }).value;
  }

  addBytes(n: number): void {
    this.q.addBytes.run(n);
  }

  blobCount(): number {
    return (this.q.countBlobs.get() as { n: number }).n;
  }

  /** Snapshot key for `snapshotId`, created (or its volume size and last use updated). */
  snapshotKey(snapshotId: string, volumeGiB: number, now: number): number {
    return (this.q.upsertSnapshot.get(snapshotId, volumeGiB, now) as { id: number }).id;
  }

  findSnapshotKey(snapshotId: string): number | undefined {
    return (this.q.findSnapshot.get(snapshotId) as { id: number } | undefined)?.id;
  }

  /** The READY blob holding block `index` of snapshot `snap`. */
  lookup(snap: number, index: number): ReadyBlob | undefined {
    return this.q.lookup.get(snap, index) as ReadyBlob | undefined;
  }

  blobByHash(hash: Buffer): BlobRow | undefined {
    return this.q.blobByHash.get(hash) as BlobRow | undefined;
  }

  insertBlob(hash: Buffer, size: number, now: number, owner: number): number {
    return Number(this.q.insertBlob.run(hash, BlobState.WRITING, size, now, owner, now).lastInsertRowid);
  }

  setBlock(snap: number, index: number, blob: number): void {
    this.q.setBlock.run(snap, index, blob);
  }

  /** WRITING → READY; false when the row is gone or was dropped meanwhile. */
  markReady(id: number): boolean {
    return this.q.markReady.run(id).changes > 0;
  }

  /** READY or WRITING → DROPPING (bytes released); the blob's size, or 0 when it was not. */
  markDropping(id: number): number {
    const row = this.q.blobState.get(id) as { state: number; size: number } | undefined;
    if (!row || row.state === BlobState.DROPPING) return 0;
    this.q.setState.run(BlobState.DROPPING, id);
    this.addBytes(-row.size);
    return row.size;
  }

  /** Removes a blob row and every block row that refers to it. */
  deleteBlob(id: number): void {
    this.q.deleteBlocksOf.run(id);
    this.q.deleteBlob.run(id);
  }

  /** The least recently used READY blobs. */
  oldest(limit: number): { id: number; hash: Buffer; size: number }[] {
    return this.q.oldest.all(limit) as { id: number; hash: Buffer; size: number }[];
  }

  unready(): BlobRow[] {
    return this.q.unready.all() as BlobRow[];
  }

  touch(ids: Iterable<number>, now: number): void {
    for (const id of ids) this.q.touch.run(now, id);
  }

  /** Most recently used other snapshots of that volume size that still hold blocks. */
  recentSnapshots(volumeGiB: number, exceptSnapshotId: string, limit: number): string[] {
    return (this.q.recent.all(volumeGiB, exceptSnapshotId, exceptSnapshotId, exceptSnapshotId, limit) as { snapshot_id: string }[]).map(
      (r) => r.snapshot_id,
    );
  }

  markUnrelated(a: string, b: string): void {
    const [x, y] = a < b ? [a, b] : [b, a];
    this.q.markUnrelated.run(x, y);
  }

  isUnrelated(a: string, b: string): boolean {
    const [x, y] = a < b ? [a, b] : [b, a];
    return this.q.isUnrelated.get(x, y) !== undefined;
  }

  blockCount(snap: number): number {
    return (this.q.countBlocks.get(snap) as { n: number }).n;
  }

  close(): void {
    this.db.close();
  }
}

function prepare(db: Database.Database) {
  return {
    getBytes: db.prepare(`SELECT value FROM meta WHERE key = 'bytes'`),
    addBytes: db.prepare(`UPDATE meta SET value = value + ? WHERE key = 'bytes'`),
    countBlobs: db.prepare(`SELECT count(*) AS n FROM blobs`),
    countBlocks: db.prepare(`SELECT count(*) AS n FROM blocks WHERE snap = ?`),
    upsertSnapshot: db.prepare(
      `INSERT INTO snapshots(snapshot_id, volume_gib, last_used) VALUES (?, ?, ?)
       ON CONFLICT(snapshot_id) DO UPDATE SET volume_gib = excluded.volume_gib, last_used = excluded.last_used
       RETURNING id`,
    ),
    findSnapshot: db.prepare(`SELECT id FROM snapshots WHERE snapshot_id = ?`),
    lookup: db.prepare(`SELECT b.id AS id, b.hash AS hash FROM blocks k JOIN blobs b ON b.id = k.blob WHERE k.snap = ? AND k.idx = ? AND b.state = 1`),
    blobByHash: db.prepare(`SELECT id, hash, state, size, owner, created FROM blobs WHERE hash = ?`),
    blobState: db.prepare(`SELECT state, size FROM blobs WHERE id = ?`),
    insertBlob: db.prepare(`INSERT INTO blobs(hash, state, size, last_used, owner, created) VALUES (?, ?, ?, ?, ?, ?)`),
    setBlock: db.prepare(`INSERT INTO blocks(snap, idx, blob) VALUES (?, ?, ?) ON CONFLICT(snap, idx) DO UPDATE SET blob = excluded.blob`),
    markReady: db.prepare(`UPDATE blobs SET state = 1 WHERE id = ? AND state = 0`),
    setState: db.prepare(`UPDATE blobs SET state = ? WHERE id = ?`),
    deleteBlocksOf: db.prepare(`DELETE FROM blocks WHERE blob = ?`),
    deleteBlob: db.prepare(`DELETE FROM blobs WHERE id = ?`),
    oldest: db.prepare(`SELECT id, hash, size FROM blobs WHERE state = 1 ORDER BY last_used LIMIT ?`),
    unready: db.prepare(`SELECT id, hash, state, size, owner, created FROM blobs WHERE state <> 1`),
    touch: db.prepare(`UPDATE blobs SET last_used = ? WHERE id = ? AND state = 1`),
    recent: db.prepare(
      `SELECT s.snapshot_id FROM snapshots s INDEXED BY snapshots_mru
       WHERE s.volume_gib = ? AND s.snapshot_id <> ?
         AND EXISTS (SELECT 1 FROM blocks k WHERE k.snap = s.id)
         AND NOT EXISTS (SELECT 1 FROM unrelated u WHERE (u.a = s.snapshot_id AND u.b = ?) OR (u.b = s.snapshot_id AND u.a = ?))
       ORDER BY s.last_used DESC LIMIT ?`,
    ),
    markUnrelated: db.prepare(`INSERT OR IGNORE INTO unrelated(a, b) VALUES (?, ?)`),
    isUnrelated: db.prepare(`SELECT 1 FROM unrelated WHERE a = ? AND b = ?`),
  };
}
