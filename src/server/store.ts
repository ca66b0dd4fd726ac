/**
 * ServerStore: the local EBS server's snapshots — state in memory, durable on disk under DATA:
 *   DATA/metadata.log   snapshot starts, written blocks (index → SHA-256) and status changes
 *                       (MetadataLog: CRC-framed JSON lines, group-committed, fdatasync'ed)
 *   DATA/blocks/ab/<sha256 hex>   block contents, each stored once (BlockFiles)
 *   DATA/secret         the HMAC key of block and page tokens (so tokens survive a restart)
 *   DATA/serve.lock     one server per data directory: a kernel-held lock (src/os/process-lock.ts)
 *
 * Contract (the service's rules, DESIGN §1; errors are ApiError with the service's names):
 * - start/put/complete change memory only once their record is durable (then callers
 *   acknowledge), in the log's order, so memory always equals what a replay would rebuild. A
 *   failed append changes nothing and is not remembered: a retry (same ClientToken included)
 *   tries again. A completion first seals the snapshot (later puts are refused) and waits for
 *   the puts already on their way to the log, so its count and checksum cover exactly the puts
 *   recorded before it. A timeout is applied at once: it follows from durable state alone
 *   (the last recorded activity), so a restart reaches the same verdict.
 * - Lineage: a snapshot's view = its parent's view overlaid with its own blocks. `view()` (sorted
 *   indexes) is cached for completed snapshots, which never change.
 * - ListChangedBlocks set of two related snapshots (same lineage tree, either order): every index
 *   written by a snapshot on the path between them (below their nearest common ancestor).
 * - Only `completed` snapshots are readable; only `pending` ones take blocks or completion.
 * - At most `maxPendingSnapshots` (default 100, AWS's quota) are pending at once: StartSnapshot
 *   beyond is ServiceQuotaExceededException (a ClientToken retry of a pending one still answers).
 *   A pending snapshot with no put and no completion for Timeout minutes (× timeoutScale, for
 *   tests) turns `error`: checked when touched and by a timer.
 * - ClientToken: same token + same parameters → the same snapshot; other parameters → Conflict.
 *
 * Log records (a stable format: other parts' tests read it to count snapshots and puts):
 *   {t:'start', id, volumeSize, parent?, tags?, description?, clientToken?, params, encrypted?,
 *    kmsKeyArn?, timeout, at}   {t:'put', id, i, sha, at}   {t:'status', id, status, at, why?}
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BLOCKS_PER_GIB,
  BLOCK_SIZE,
  DEFAULT_MAX_PENDING_SNAPSHOTS,
  DEFAULT_SNAPSHOT_TIMEOUT_MIN,
  MAX_SNAPSHOT_TIMEOUT_MIN,
  MAX_VOLUME_GIB,
  MIN_SNAPSHOT_TIMEOUT_MIN,
  MIN_VOLUME_GIB,
} from '../ebs/constants.js';
import { Reason } from '../ebs/errors.js';
import { openPrivateFile } from '../os/private-path.js';
import { acquireProcessLock, LockBusyError, type ProcessLock } from '../os/process-lock.js';
import type { Logger } from '../util/log.js';
import { BlockFiles, fsyncDir } from './block-files.js';
import { loadSecret, prepareDataDir } from './data-dir.js';
import { MetadataLog } from './metadata-log.js';
import { mergeSorted, sortedKeys, unionSorted } from './pagination.js';
import { ApiError, notFound, validation } from './wire.js';

export type SnapshotStatus = 'pending' | 'completed' | 'error';
export const OWNER_ID = '111122223333';
const WELL_FORMED_ID = /^snap-[0-9a-f]{1,32}$/;
const SHA_HEX = /^[0-9a-f]{64}$/;
const LOCK_FILE = 'serve.lock';
const LEGACY_PID_FILE = 'serve.pid';

export interface Tag {
  Key: string;
  Value: string;
}

export interface StartParams {
  volumeSize: number;
  parentSnapshotId?: string;
  tags?: Tag[];
  description?: string;
  clientToken?: string;
  encrypted?: boolean;
  kmsKeyArn?: string;
  timeout?: number;
}

type LogRecord =
  | {
      t: 'start';
      id: string;
      volumeSize: number;
      parent?: string;
      tags?: Tag[];
      description?: string;
      clientToken?: string;
      params: string;
      encrypted?: boolean;
      kmsKeyArn?: string;
      timeout: number;
      at: number;
    }
  | { t: 'put'; id: string; i: number; sha: string; at: number }
  | { t: 'status'; id: string; status: 'completed' | 'error'; at: number; why?: string };

export class Snapshot {
  status: SnapshotStatus = 'pending';
  statusMessage?: string;
  lastActivity: number;
  completedAt?: number;
  /** Blocks written to this snapshot itself: index → SHA-256 hex. */
  readonly own = new Map<number, string>();
  readonly root: Snapshot;
  viewCache?: Uint32Array;
  /** A completion is being recorded: no more puts. */
  sealed = false;
  /** Puts appended to the log, not yet applied. */
  readonly inFlightPuts = new Set<Promise<void>>();

  constructor(
    readonly id: string,
    readonly volumeSize: number,
    readonly parent: Snapshot | undefined,
    readonly startTime: number,
    readonly timeoutMin: number,
    readonly meta: {
      tags?: Tag[];
      description?: string;
      clientToken?: string;
      params: string;
      encrypted: boolean;
      kmsKeyArn?: string;
    },
  ) {
    this.lastActivity = startTime;
    this.root = parent ? parent.root : this;
  }

  get blockCount(): number {
    return this.volumeSize * BLOCKS_PER_GIB;
  }
}

export interface StoreOptions {
  dataDir: string;
  logger: Logger;
  /** Multiplies every snapshot's Timeout (tests use a small value). Default 1. */
  timeoutScale?: number;
  /** StartSnapshot beyond this many pending snapshots is ServiceQuotaExceededException. Default 100 (AWS's quota). */
  maxPendingSnapshots?: number;
  now?: () => number;
}

export class ServerStore {
  readonly snapshots = new Map<string, Snapshot>();
  private readonly byClientToken = new Map<string, Snapshot>();
  /** Starts with a ClientToken whose record is not yet durable. */
  private readonly startsInFlight = new Map<string, { params: string; done: Promise<Snapshot> }>();
  private startsPending = 0;
  private readonly changedCache = new Map<string, Uint32Array>();
  private timer?: NodeJS.Timeout;
  private closed = false;
  readonly now: () => number;

  private constructor(
    private readonly opts: StoreOptions,
    readonly blocks: BlockFiles,
    private log: MetadataLog,
    readonly secret: Buffer,
    private readonly lock: ProcessLock,
  ) {
    this.now = opts.now ?? Date.now;
  }

  static async open(opts: StoreOptions): Promise<ServerStore> {
    const dir = opts.dataDir;
    const realDir = prepareDataDir(dir);
    const lock = lockDataDir(realDir);
    try {
      return await ServerStore.load({ ...opts, dataDir: realDir }, lock);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  private static async load(opts: StoreOptions, lock: ProcessLock): Promise<ServerStore> {
    const dir = opts.dataDir;
    await rm(join(dir, LEGACY_PID_FILE), { force: true }); // left by older versions
    const secret = await loadSecret(join(dir, 'secret'));
    const blocks = new BlockFiles(join(dir, 'blocks'), opts.logger);
    await blocks.init();
    closeSync(openPrivateFile(join(dir, 'metadata.log'), 'rw', 'maybe')); // ours, 0600, no symlink
    const { log, records, skipped, truncatedBytes } = await MetadataLog.open<LogRecord>(join(dir, 'metadata.log'), {
      beforeFlush: () => blocks.syncDirs(),
    });
    await fsyncDir(dir); // the entries of blocks/ and metadata.log themselves
    if (truncatedBytes > 0) opts.logger.warn({ truncatedBytes }, 'dropped a torn record at the end of the metadata log');
    if (skipped > 0) opts.logger.warn({ skipped }, 'skipped corrupt records in the metadata log');
    const store = new ServerStore(opts, blocks, log, secret, lock);
    store.replay(records);
    store.timer = setInterval(() => store.sweepTimeouts(), 1000);
    store.timer.unref();
    opts.logger.info({ snapshots: store.snapshots.size, blocks: blocks.distinctBlocks }, 'data loaded');
    return store;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.log.close();
    this.lock.release();
  }

  // ---- lookups -------------------------------------------------------------------------------

  /** The snapshot `id`, or ValidationException (malformed id) / ResourceNotFoundException. */
  get(id: string): Snapshot {
    if (!WELL_FORMED_ID.test(id)) throw validation(`The snapshot ID '${id}' is not valid`, Reason.INVALID_SNAPSHOT_ID);
    const snap = this.snapshots.get(id);
    if (!snap) throw notFound(`The snapshot '${id}' does not exist.`, Reason.SNAPSHOT_NOT_FOUND);
    this.checkTimeout(snap);
    return snap;
  }

  /** A snapshot that may be read (listed, blocks fetched): completed. */
  readable(id: string): Snapshot {
    const snap = this.get(id);
    if (snap.status !== 'completed') {
      throw validation(
        `The snapshot '${id}' is not completed (status: ${snap.status}); only completed snapshots can be read.`,
        Reason.SNAPSHOT_NOT_COMPLETED,
      );
    }
    return snap;
  }

  /** SHA-256 hex of block `index` in the snapshot's view, or undefined when never written. */
  lookup(snap: Snapshot, index: number): string | undefined {
    for (let s: Snapshot | undefined = snap; s; s = s.parent) {
      const sha = s.own.get(index);
      if (sha !== undefined) return sha;
    }
    return undefined;
  }

  /** Sorted indexes of every block in the snapshot's view (its own and its ancestors'). */
  view(snap: Snapshot): Uint32Array {
    if (snap.viewCache) return snap.viewCache;
    const own = sortedKeys(snap.own);
    const v = snap.parent ? mergeSorted(own, this.view(snap.parent)) : own;
    if (snap.status === 'completed') snap.viewCache = v;
    return v;
  }

  /** Sorted indexes that differ between two snapshots of one lineage tree (either order). */
  changed(first: Snapshot, second: Snapshot): Uint32Array {
    if (first.root !== second.root) {
      throw validation(
        `The snapshots '${first.id}' and '${second.id}' are not in the same lineage.`,
        Reason.UNRELATED_SNAPSHOTS,
      );
    }
    const key = `${first.id}|${second.id}`;
    const cached = this.changedCache.get(key);
    if (cached) return cached;
    const firstChain = new Set<Snapshot>();
    for (let s: Snapshot | undefined = first; s; s = s.parent) firstChain.add(s);
    let common: Snapshot | undefined = second;
    while (common && !firstChain.has(common)) common = common.parent;
    const sets: Map<number, string>[] = [];
    for (let s: Snapshot | undefined = first; s && s !== common; s = s.parent) sets.push(s.own);
    for (let s: Snapshot | undefined = second; s && s !== common; s = s.parent) sets.push(s.own);
    const out = sets.length === 1 ? sortedKeys(sets[0]!) : unionSorted(sets.map((m) => m.keys()));
    if (first.status === 'completed' && second.status === 'completed') {
      if (this.changedCache.size >= 32) this.changedCache.delete(this.changedCache.keys().next().value!);
      this.changedCache.set(key, out);
    }
    return out;
  }

  /** Reads a block into `into` (one block long). */
  readBlock(shaHex: string, into?: Buffer): Promise<Buffer> {
    return this.blocks.read(shaHex, into);
  }

  // ---- StartSnapshot -------------------------------------------------------------------------

  async start(p: StartParams): Promise<Snapshot> {
    const params = JSON.stringify([
      p.volumeSize,
      p.parentSnapshotId ?? null,
      p.tags ?? null,
      p.description ?? null,
      p.encrypted ?? null,
      p.kmsKeyArn ?? null,
      p.timeout ?? null,
    ]);
    if (p.clientToken !== undefined) {
      const prior = this.byClientToken.get(p.clientToken);
      const inFlight = this.startsInFlight.get(p.clientToken);
      if ((prior?.meta.params ?? inFlight?.params ?? params) !== params) {
        throw new ApiError('ConflictException', 'The request uses the same client token as a previous, but non-identical request.');
      }
      if (prior) {
        this.checkTimeout(prior);
        return prior;
      }
      if (inFlight) {
        const first = await inFlight.done.catch(() => undefined);
        return first ?? this.start(p); // the first attempt failed: nothing was kept, try again
      }
    }
    validateStart(p);
    let parent: Snapshot | undefined;
    if (p.parentSnapshotId !== undefined) {
      if (!WELL_FORMED_ID.test(p.parentSnapshotId)) {
        throw validation(`The parent snapshot ID '${p.parentSnapshotId}' is not valid`, Reason.INVALID_SNAPSHOT_ID);
      }
      parent = this.snapshots.get(p.parentSnapshotId);
      if (!parent) {
        throw notFound(`The parent snapshot '${p.parentSnapshotId}' does not exist.`, Reason.SNAPSHOT_NOT_FOUND);
      }
      this.checkTimeout(parent);
      if (parent.status !== 'completed') {
        throw validation(
          `The parent snapshot '${parent.id}' is not completed (status: ${parent.status}).`,
          Reason.SNAPSHOT_NOT_COMPLETED,
        );
      }
      if (p.volumeSize < parent.volumeSize) {
        throw validation(
          `The volume size ${p.volumeSize} GiB is smaller than the parent snapshot's ${parent.volumeSize} GiB.`,
          Reason.INVALID_VOLUME_SIZE,
        );
      }
    }
    this.sweepTimeouts();
    const maxPending = this.opts.maxPendingSnapshots ?? DEFAULT_MAX_PENDING_SNAPSHOTS;
    let pending = this.startsPending;
    for (const snap of this.snapshots.values()) if (snap.status === 'pending') pending++;
    if (pending >= maxPending) {
      throw new ApiError(
        'ServiceQuotaExceededException',
        `You have ${pending} pending snapshots, the most allowed (${maxPending}): complete some, or let them time out.`,
      );
    }
    let id: string;
    do id = `snap-${randomBytes(9).toString('hex').slice(0, 17)}`;
    while (this.snapshots.has(id));
    const record: LogRecord = {
      t: 'start',
      id,
      volumeSize: p.volumeSize,
      parent: parent?.id,
      tags: p.tags,
      description: p.description,
      clientToken: p.clientToken,
      params,
      encrypted: p.encrypted,
      kmsKeyArn: p.kmsKeyArn,
      timeout: p.timeout ?? DEFAULT_SNAPSHOT_TIMEOUT_MIN,
      at: this.now(),
    };
    const token = p.clientToken;
    const done = this.log.append(record).then(() => {
      const started = this.applyStart(record);
      if (token !== undefined) this.byClientToken.set(token, started);
      return started;
    });
    const entry = { params, done };
    this.startsPending++;
    if (token !== undefined) this.startsInFlight.set(token, entry);
    let snap: Snapshot;
    try {
      snap = await done;
    } finally {
      this.startsPending--;
      if (token !== undefined && this.startsInFlight.get(token) === entry) this.startsInFlight.delete(token);
    }
    this.opts.logger.info({ snapshotId: id, parent: parent?.id, volumeSize: p.volumeSize }, 'snapshot started');
    return snap;
  }

  // ---- PutSnapshotBlock ----------------------------------------------------------------------

  /** Checks that `index` may be written to snapshot `id` now (no I/O). */
  writable(id: string, index: number): Snapshot {
    const snap = this.get(id);
    if (snap.status !== 'pending' || snap.sealed) {
      throw validation(
        `The snapshot '${id}' is ${snap.sealed && snap.status === 'pending' ? 'being completed' : snap.status}; blocks can be written only to pending snapshots.`,
        Reason.SNAPSHOT_NOT_PENDING,
      );
    }
    if (index >= snap.blockCount) {
      throw validation(
        `The block index ${index} is outside the volume (${snap.volumeSize} GiB has blocks 0 to ${snap.blockCount - 1}).`,
        Reason.INVALID_BLOCK,
      );
    }
    return snap;
  }

  /** Stores the block, then records it; resolves when both are durable. */
  async put(id: string, index: number, data: Buffer, shaHex: string): Promise<void> {
    if (data.length !== BLOCK_SIZE) throw new Error('put: block of wrong size');
    await this.blocks.put(shaHex, data);
    const snap = this.writable(id, index); // the snapshot may have completed or timed out meanwhile
    const record: LogRecord = { t: 'put', id, i: index, sha: shaHex, at: this.now() };
    const applied = this.log.append(record).then(() => this.applyPut(record));
    snap.inFlightPuts.add(applied);
    try {
      await applied;
    } finally {
      snap.inFlightPuts.delete(applied);
    }
  }

  // ---- CompleteSnapshot ----------------------------------------------------------------------

  async complete(id: string, changedBlocksCount: number, linearChecksum?: string): Promise<SnapshotStatus> {
    const snap = this.get(id);
    if (snap.status !== 'pending' || snap.sealed) {
      const status = snap.sealed && snap.status === 'pending' ? 'being completed' : snap.status;
      throw validation(`The snapshot '${id}' is ${status}; only a pending snapshot can be completed.`, Reason.SNAPSHOT_NOT_PENDING);
    }
    snap.sealed = true;
    try {
      await Promise.allSettled([...snap.inFlightPuts]);
      return await this.recordCompletion(snap, changedBlocksCount, linearChecksum);
    } finally {
      snap.sealed = false; // completed or error by now; or the record failed and a retry may come
    }
  }

  private async recordCompletion(snap: Snapshot, changedBlocksCount: number, linearChecksum?: string): Promise<SnapshotStatus> {
    const id = snap.id;
    if (snap.status !== 'pending') {
      // Timed out while the puts on their way settled.
      throw validation(`The snapshot '${id}' is ${snap.status}; only a pending snapshot can be completed.`, Reason.SNAPSHOT_NOT_PENDING);
    }
    let why: string | undefined;
    if (changedBlocksCount !== snap.own.size) {
      why = `ChangedBlocksCount ${changedBlocksCount} does not match the ${snap.own.size} blocks written`;
    } else if (linearChecksum !== undefined && linearChecksum !== linearChecksumOf(snap)) {
      why = 'the LINEAR checksum does not match the blocks written';
    }
    const record: LogRecord = { t: 'status', id, status: why ? 'error' : 'completed', at: this.now(), why };
    await this.log.append(record);
    this.applyStatus(record);
    if (why) this.opts.logger.warn({ snapshotId: id, why }, 'snapshot completion failed: status error');
    else this.opts.logger.info({ snapshotId: id, blocks: snap.own.size }, 'snapshot completed');
    return snap.status;
  }

  // ---- timeouts ------------------------------------------------------------------------------

  private deadline(snap: Snapshot): number {
    return snap.lastActivity + snap.timeoutMin * 60_000 * (this.opts.timeoutScale ?? 1);
  }

  private checkTimeout(snap: Snapshot): void {
    if (snap.status !== 'pending' || snap.sealed || this.now() < this.deadline(snap) || this.closed) return;
    const record: LogRecord = {
      t: 'status',
      id: snap.id,
      status: 'error',
      at: this.now(),
      why: `not completed within its timeout of ${snap.timeoutMin} minutes`,
    };
    this.applyStatus(record);
    this.opts.logger.warn({ snapshotId: snap.id }, 'snapshot timed out: status error');
    this.log.append(record).catch((err: unknown) => this.opts.logger.error({ err }, 'could not record a timeout'));
  }

  private sweepTimeouts(): void {
    for (const snap of this.snapshots.values()) if (snap.status === 'pending') this.checkTimeout(snap);
  }

  // ---- applying records (live and at replay) ------------------------------------------------

  private replay(records: LogRecord[]): void {
    for (const r of records) {
      try {
        if (r.t === 'start') {
          const snap = this.applyStart(r);
          if (r.clientToken !== undefined) this.byClientToken.set(r.clientToken, snap);
        } else if (r.t === 'put') {
          this.applyPut(r);
        } else if (r.t === 'status') {
          this.applyStatus(r);
        }
      } catch (err) {
        this.opts.logger.warn({ err, record: r.t }, 'skipped an inconsistent metadata record');
      }
    }
  }

  private applyStart(r: Extract<LogRecord, { t: 'start' }>): Snapshot {
    if (typeof r.id !== 'string' || !WELL_FORMED_ID.test(r.id)) throw new Error('invalid snapshot id in a start record');
    const parent = r.parent !== undefined ? this.snapshots.get(r.parent) : undefined;
    if (r.parent !== undefined && !parent) throw new Error(`unknown parent ${r.parent}`);
    const encrypted = Boolean(r.encrypted) || Boolean(parent?.meta.encrypted);
    const snap = new Snapshot(r.id, r.volumeSize, parent, r.at, r.timeout, {
      tags: r.tags,
      description: r.description,
      clientToken: r.clientToken,
      params: r.params,
      encrypted,
      kmsKeyArn: r.kmsKeyArn ?? parent?.meta.kmsKeyArn ?? (encrypted ? `arn:aws:kms:us-east-1:${OWNER_ID}:alias/aws/ebs` : undefined),
    });
    this.snapshots.set(r.id, snap);
    return snap;
  }

  private applyPut(r: Extract<LogRecord, { t: 'put' }>): void {
    if (typeof r.sha !== 'string' || !SHA_HEX.test(r.sha)) throw new Error(`invalid block hash in a put record of ${r.id}`);
    if (!Number.isInteger(r.i) || r.i < 0) throw new Error(`invalid block index in a put record of ${r.id}`);
    const snap = this.snapshots.get(r.id);
    if (!snap) throw new Error(`put into unknown snapshot ${r.id}`);
    snap.own.set(r.i, r.sha);
    snap.lastActivity = Math.max(snap.lastActivity, r.at);
    this.blocks.markKnown(r.sha);
  }

  private applyStatus(r: Extract<LogRecord, { t: 'status' }>): void {
    const snap = this.snapshots.get(r.id);
    if (!snap) throw new Error(`status of unknown snapshot ${r.id}`);
    snap.status = r.status;
    snap.statusMessage = r.why;
    snap.completedAt = r.at;
    snap.viewCache = undefined;
  }
}

/** The LINEAR aggregate checksum (base64) of a snapshot's own blocks. */
export function linearChecksumOf(snap: Snapshot): string {
  const h = createHash('sha256');
  for (const i of sortedKeys(snap.own)) h.update(Buffer.from(snap.own.get(i)!, 'hex'));
  return h.digest('base64');
}

function validateStart(p: StartParams): void {
  if (!Number.isInteger(p.volumeSize) || p.volumeSize < MIN_VOLUME_GIB || p.volumeSize > MAX_VOLUME_GIB) {
    throw validation(
      `VolumeSize must be an integer from ${MIN_VOLUME_GIB} to ${MAX_VOLUME_GIB} GiB (got ${String(p.volumeSize)}).`,
      Reason.INVALID_VOLUME_SIZE,
    );
  }
  if (p.parentSnapshotId !== undefined && p.encrypted !== undefined) {
    throw validation('ParentSnapshotId and Encrypted cannot be specified together.', Reason.INVALID_PARAMETER_VALUE);
  }
  if (p.timeout !== undefined && (!Number.isInteger(p.timeout) || p.timeout < MIN_SNAPSHOT_TIMEOUT_MIN || p.timeout > MAX_SNAPSHOT_TIMEOUT_MIN)) {
    throw validation(
      `Timeout must be an integer from ${MIN_SNAPSHOT_TIMEOUT_MIN} to ${MAX_SNAPSHOT_TIMEOUT_MIN} minutes.`,
      Reason.INVALID_PARAMETER_VALUE,
    );
  }
  if (p.description !== undefined && p.description.length > 255) {
    throw validation('Description must be at most 255 characters.', Reason.INVALID_PARAMETER_VALUE);
  }
  if (p.clientToken !== undefined && (p.clientToken.length === 0 || p.clientToken.length > 255)) {
    throw validation('ClientToken must be 1 to 255 characters.', Reason.INVALID_PARAMETER_VALUE);
  }
  if (p.tags !== undefined) {
    if (p.tags.length > 50) throw validation('At most 50 tags are allowed.', 'INVALID_TAG');
    for (const t of p.tags) {
      if (t.Key.length === 0 || t.Key.length > 127 || t.Value.length > 255 || t.Key.startsWith('aws:')) {
        throw validation(`The tag key '${t.Key}' or its value is not valid.`, 'INVALID_TAG');
      }
    }
  }
}

export class DataDirInUseError extends Error {}

/** One server per data directory: a kernel-held lock (ProcessLock), released even by kill -9. */
function lockDataDir(dir: string): ProcessLock {
  try {
    return acquireProcessLock(join(dir, LOCK_FILE));
  } catch (err) {
    if (err instanceof LockBusyError) {
      const by = err.holderPid !== undefined ? ` (pid ${err.holderPid})` : '';
      throw new DataDirInUseError(`the data directory is in use by another server${by}`);
    }
    throw err;
  }
}
