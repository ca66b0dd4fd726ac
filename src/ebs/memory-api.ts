/**
 * MemoryEbsApi: an in-memory EbsApi double with the service's observable rules, for unit tests.
 *
 * Contract (as DESIGN §1, where unit tests can tell):
 * - Snapshots have lineage: a child lists and serves its parent's blocks except those it wrote.
 *   Listing is ascending and paged (MaxResults 100–10,000, NextToken wins over
 *   StartingBlockIndex); ListChangedBlocks works inside one lineage only.
 * - Block tokens name snapshot, block and a generation; `expireTokens()` bumps the generation so
 *   every earlier token fails with ValidationException INVALID_BLOCK_TOKEN.
 * - Puts: 524,288 bytes, checksum verified, only into pending snapshots. Complete checks
 *   ChangedBlocksCount and the LINEAR checksum (mismatch → status error). ClientToken makes
 *   StartSnapshot idempotent (ConflictException on other parameters).
 * - Test hooks: `calls` records every call; `injectFailure(op, err, n)` fails the next n calls of
 *   op before they take effect; `corruptNext(op, n)` flips bytes of the next n GetSnapshotBlock
 *   bodies (checksum header left right); `latencyMs` delays every call.
 */
import type {
  BlockData, BlockPage, ChangedPage, EbsApi, ListPageOptions, SnapshotStatus, StartSnapshotInput, StartedSnapshot, Tag,
} from './api.js';
import { LinearChecksum, sha256Base64 } from './checksum.js';
import { BLOCK_SIZE, MAX_LIST_RESULTS, MIN_LIST_RESULTS, blocksInVolume } from './constants.js';
import { EbsError, Reason } from './errors.js';

export type EbsOp = 'listSnapshotBlocks' | 'listChangedBlocks' | 'getSnapshotBlock' | 'startSnapshot' | 'putSnapshotBlock' | 'completeSnapshot';

export interface MemoryCall {
  op: EbsOp;
  snapshotId: string;
  index?: number;
}

interface MemorySnapshot {
  id: string;
  status: SnapshotStatus;
  /** CompleteSnapshot answered pending: listings still see it pending this many more times, then `outcome`. */
  completing?: { probes: number; outcome: SnapshotStatus };
  volumeSizeGiB: number;
  parentSnapshotId?: string;
  own: Map<number, Buffer>;
  description?: string;
  tags?: Tag[];
  clientToken?: string;
  paramsKey: string;
  startTime: Date;
  kmsKeyArn?: string;
}

export class MemoryEbsApi implements EbsApi {
  readonly calls: MemoryCall[] = [];
  latencyMs = 0;
  private readonly snapshots = new Map<string, MemorySnapshot>();
  private readonly byClientToken = new Map<string, string>();
  private readonly failures = new Map<EbsOp, unknown[]>();
  private readonly corruptions = new Map<EbsOp, number>();
  private generation = 0;
  private nextId = 1;

  // ---- test hooks ----

  counts(op: EbsOp): number {
    return this.calls.filter((c) => c.op === op).length;
  }

  injectFailure(op: EbsOp, err: unknown, times = 1): void {
    const q = this.failures.get(op) ?? [];
    for (let i = 0; i < times; i++) q.push(err);
    this.failures.set(op, q);
  }

  corruptNext(op: EbsOp, times = 1): void {
    this.corruptions.set(op, (this.corruptions.get(op) ?? 0) + times);
  }

  /**
   * As AWS does: the next CompleteSnapshot answers 'pending'; the snapshot then stays pending
   * for `probes` more ListSnapshotBlocks of it, and becomes `outcome` (completed, or error).
   */
  completeAsPending(probes: number, outcome: SnapshotStatus = 'completed'): void {
    this.pendingCompletion = { probes, outcome };
  }

  private pendingCompletion: { probes: number; outcome: SnapshotStatus } | undefined;

  expireTokens(): void {
    this.generation++;
  }

  /**
   * A completed snapshot holding `blocks` (written as given, zeros included); encrypted with
   * `kmsKeyArn` when given (children inherit it, as on the service).
   */
  createCompletedSnapshot(blocks: Map<number, Buffer>, volumeSizeGiB: number, opts: { parentSnapshotId?: string; kmsKeyArn?: string } = {}): string {
    const snap = this.create({ volumeSizeGiB, parentSnapshotId: opts.parentSnapshotId, kmsKeyArn: opts.kmsKeyArn });
    for (const [i, b] of blocks) {
      if (b.length !== BLOCK_SIZE) throw new RangeError(`block ${i} is not ${BLOCK_SIZE} bytes`);
      snap.own.set(i, b);
    }
    snap.status = 'completed';
    return snap.id;
  }

  /** The snapshot's complete view (parent's blocks overlaid with its own). */
  blocksOf(snapshotId: string): Map<number, Buffer> {
    const snap = this.mustGet(snapshotId);
    const parent = snap.parentSnapshotId ? this.blocksOf(snap.parentSnapshotId) : new Map<number, Buffer>();
    for (const [i, b] of snap.own) parent.set(i, b);
    return new Map([...parent].sort((a, b) => a[0] - b[0]));
  }

  statusOf(snapshotId: string): SnapshotStatus {
    return this.mustGet(snapshotId).status;
  }

  snapshotIds(): string[] {
    return [...this.snapshots.keys()];
  }

  infoOf(snapshotId: string): StartedSnapshot {
    return this.describe(this.mustGet(snapshotId));
  }

  // ---- EbsApi ----

  async listSnapshotBlocks(snapshotId: string, opts: ListPageOptions = {}): Promise<BlockPage> {
    await this.enter('listSnapshotBlocks', snapshotId);
    const completing = this.snapshots.get(snapshotId)?.completing;
    if (completing && completing.probes-- <= 0) {
      const s = this.mustGet(snapshotId);
      s.status = completing.outcome;
      s.completing = undefined;
    }
    const snap = this.readable(snapshotId);
    const view = this.blocksOf(snapshotId);
    const { indexes, nextToken } = this.page([...view.keys()], opts);
    return {
      blocks: indexes.map((index) => ({ index, token: this.tokenFor(snapshotId, index) })),
      nextToken,
      expiryTime: new Date(Date.now() + 3_600_000),
      volumeSizeGiB: snap.volumeSizeGiB,
      blockSize: BLOCK_SIZE,
    };
  }

  async listChangedBlocks(firstSnapshotId: string | undefined, secondSnapshotId: string, opts: ListPageOptions = {}): Promise<ChangedPage> {
    await this.enter('listChangedBlocks', secondSnapshotId);
    const second = this.readable(secondSnapshotId);
    const secondView = this.blocksOf(secondSnapshotId);
    let firstView = new Map<number, Buffer>();
    if (firstSnapshotId !== undefined) {
      this.readable(firstSnapshotId);
      if (this.rootOf(firstSnapshotId) !== this.rootOf(secondSnapshotId)) {
        throw new EbsError('ValidationException', 'The snapshots are not related', { status: 400, reason: Reason.UNRELATED_SNAPSHOTS });
      }
      firstView = this.blocksOf(firstSnapshotId);
    }
    const changed = new Set<number>();
    for (const [i, b] of secondView) if (firstView.get(i) !== b) changed.add(i);
    for (const i of firstView.keys()) if (!secondView.has(i)) changed.add(i);
    const { indexes, nextToken } = this.page([...changed].sort((a, b) => a - b), opts);
    return {
      blocks: indexes.map((index) => ({
        index,
        firstToken: firstView.has(index) && firstSnapshotId ? this.tokenFor(firstSnapshotId, index) : undefined,
        secondToken: secondView.has(index) ? this.tokenFor(secondSnapshotId, index) : undefined,
      })),
      nextToken,
      expiryTime: new Date(Date.now() + 3_600_000),
      volumeSizeGiB: second.volumeSizeGiB,
      blockSize: BLOCK_SIZE,
    };
  }

  async getSnapshotBlock(snapshotId: string, blockIndex: number, blockToken: string): Promise<BlockData> {
    await this.enter('getSnapshotBlock', snapshotId, blockIndex);
    this.readable(snapshotId);
    if (blockToken !== this.tokenFor(snapshotId, blockIndex)) {
      throw new EbsError('ValidationException', 'The block token is not valid', { status: 400, reason: Reason.INVALID_BLOCK_TOKEN });
    }
    const block = this.blocksOf(snapshotId).get(blockIndex);
    if (!block) throw new EbsError('ResourceNotFoundException', `block ${blockIndex} does not exist`, { status: 404 });
    const checksum = sha256Base64(block);
    let data = Buffer.from(block);
    const corrupt = this.corruptions.get('getSnapshotBlock') ?? 0;
    if (corrupt > 0) {
      this.corruptions.set('getSnapshotBlock', corrupt - 1);
      data[data.length >> 1] ^= 0xff;
    }
    return { data, checksum, checksumAlgorithm: 'SHA256', dataLength: BLOCK_SIZE };
  }

  async startSnapshot(input: StartSnapshotInput): Promise<StartedSnapshot> {
    await this.enter('startSnapshot', input.parentSnapshotId ?? '');
    if (!Number.isInteger(input.volumeSizeGiB) || input.volumeSizeGiB < 1 || input.volumeSizeGiB > 65_536) {
      throw new EbsError('ValidationException', 'VolumeSize must be between 1 and 65536', { status: 400, reason: Reason.INVALID_VOLUME_SIZE });
    }
    const paramsKey = JSON.stringify([input.volumeSizeGiB, input.parentSnapshotId ?? null, input.description ?? null, input.tags ?? []]);
    if (input.clientToken) {
      const existing = this.byClientToken.get(input.clientToken);
      if (existing) {
        const snap = this.mustGet(existing);
        if (snap.paramsKey !== paramsKey) throw new EbsError('ConflictException', 'ClientToken reused with other parameters', { status: 409 });
        return this.describe(snap);
      }
    }
    if (input.parentSnapshotId) {
      const parent = this.snapshots.get(input.parentSnapshotId);
      if (!parent) throw new EbsError('ResourceNotFoundException', `parent snapshot ${input.parentSnapshotId} does not exist`, { status: 404, reason: Reason.SNAPSHOT_NOT_FOUND });
      if (parent.volumeSizeGiB > input.volumeSizeGiB) {
        throw new EbsError('ValidationException', 'VolumeSize is smaller than the parent', { status: 400, reason: Reason.INVALID_VOLUME_SIZE });
      }
    }
    const snap = this.create(input, paramsKey);
    if (input.clientToken) this.byClientToken.set(input.clientToken, snap.id);
    return this.describe(snap);
  }

  async putSnapshotBlock(snapshotId: string, blockIndex: number, data: Buffer, checksumBase64: string): Promise<void> {
    await this.enter('putSnapshotBlock', snapshotId, blockIndex);
    const snap = this.mustGet(snapshotId);
    if (snap.status !== 'pending') {
      throw new EbsError('ValidationException', `snapshot ${snapshotId} is ${snap.status}, not pending`, { status: 400, reason: Reason.SNAPSHOT_NOT_PENDING });
    }
    if (data.length !== BLOCK_SIZE) throw new EbsError('ValidationException', 'DataLength must be 524288', { status: 400, reason: Reason.INVALID_PARAMETER_VALUE });
    if (!Number.isInteger(blockIndex) || blockIndex < 0 || blockIndex >= blocksInVolume(snap.volumeSizeGiB)) {
      throw new EbsError('ValidationException', `block index ${blockIndex} is outside the volume`, { status: 400, reason: Reason.INVALID_BLOCK });
    }
    if (sha256Base64(data) !== checksumBase64) {
      throw new EbsError('ValidationException', 'checksum mismatch', { status: 400, reason: Reason.CHECKSUM_MISMATCH });
    }
    snap.own.set(blockIndex, Buffer.from(data));
  }

  async completeSnapshot(snapshotId: string, changedBlocksCount: number, opts: { linearChecksum?: string } = {}): Promise<{ status: SnapshotStatus }> {
    await this.enter('completeSnapshot', snapshotId);
    const snap = this.mustGet(snapshotId);
    if (snap.status !== 'pending') {
      throw new EbsError('ValidationException', `snapshot ${snapshotId} is ${snap.status}, not pending`, { status: 400, reason: Reason.SNAPSHOT_NOT_PENDING });
    }
    const linear = new LinearChecksum();
    for (const [i, b] of snap.own) linear.add(i, sha256Base64(b));
    const ok = changedBlocksCount === snap.own.size && (opts.linearChecksum === undefined || opts.linearChecksum === linear.digest());
    if (snap.completing) {
      throw new EbsError('ValidationException', `snapshot ${snapshotId} is already being completed`, { status: 400, reason: Reason.SNAPSHOT_NOT_PENDING });
    }
    if (ok && this.pendingCompletion) {
      snap.completing = this.pendingCompletion;
      this.pendingCompletion = undefined;
      return { status: 'pending' };
    }
    snap.status = ok ? 'completed' : 'error';
    return { status: snap.status };
  }

  // ---- internals ----

  private create(input: Pick<StartSnapshotInput, 'volumeSizeGiB' | 'parentSnapshotId' | 'description' | 'tags' | 'clientToken' | 'kmsKeyArn' | 'encrypted'>, paramsKey = ''): MemorySnapshot {
    const id = `snap-${(this.nextId++).toString(16).padStart(17, '0')}`;
    const snap: MemorySnapshot = {
      id,
      status: 'pending',
      volumeSizeGiB: input.volumeSizeGiB,
      parentSnapshotId: input.parentSnapshotId,
      own: new Map(),
      description: input.description,
      tags: input.tags,
      clientToken: input.clientToken,
      paramsKey,
      startTime: new Date(),
      kmsKeyArn: input.kmsKeyArn
        ?? (input.parentSnapshotId ? this.snapshots.get(input.parentSnapshotId)?.kmsKeyArn : undefined)
        ?? (input.encrypted ? 'arn:aws:kms:us-east-1:000000000000:alias/aws/ebs' : undefined),
    };
    this.snapshots.set(id, snap);
    return snap;
  }

  private describe(snap: MemorySnapshot): StartedSnapshot {
    return {
      snapshotId: snap.id,
      status: snap.status,
      volumeSizeGiB: snap.volumeSizeGiB,
      blockSize: BLOCK_SIZE,
      parentSnapshotId: snap.parentSnapshotId,
      description: snap.description,
      tags: snap.tags,
      startTime: snap.startTime,
      ownerId: '000000000000',
      kmsKeyArn: snap.kmsKeyArn,
    };
  }

  private async enter(op: EbsOp, snapshotId: string, index?: number): Promise<void> {
    this.calls.push(index === undefined ? { op, snapshotId } : { op, snapshotId, index });
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    const q = this.failures.get(op);
    if (q && q.length > 0) throw q.shift();
  }

  private mustGet(snapshotId: string): MemorySnapshot {
    const snap = this.snapshots.get(snapshotId);
    if (!snap) throw new EbsError('ResourceNotFoundException', `The snapshot '${snapshotId}' does not exist.`, { status: 404, reason: Reason.SNAPSHOT_NOT_FOUND });
    return snap;
  }

  private readable(snapshotId: string): MemorySnapshot {
    const snap = this.mustGet(snapshotId);
    if (snap.status !== 'completed') {
      throw new EbsError('ValidationException', `snapshot ${snapshotId} is not completed (status ${snap.status})`, {
        status: 400,
        reason: Reason.SNAPSHOT_NOT_COMPLETED,
      });
    }
    return snap;
  }

  private rootOf(snapshotId: string): string {
    let snap = this.mustGet(snapshotId);
    while (snap.parentSnapshotId) snap = this.mustGet(snap.parentSnapshotId);
    return snap.id;
  }

  private tokenFor(snapshotId: string, index: number): string {
    return `tok:${snapshotId}:${index}:${this.generation}`;
  }

  private page(sorted: number[], opts: ListPageOptions): { indexes: number[]; nextToken?: string } {
    const max = opts.maxResults ?? MAX_LIST_RESULTS;
    if (max < MIN_LIST_RESULTS || max > MAX_LIST_RESULTS) {
      throw new EbsError('ValidationException', `MaxResults must be between ${MIN_LIST_RESULTS} and ${MAX_LIST_RESULTS}`, {
        status: 400,
        reason: Reason.INVALID_PARAMETER_VALUE,
      });
    }
    let start = opts.startingBlockIndex ?? 0;
    if (opts.nextToken !== undefined) {
      const m = /^page:(\d+)$/.exec(opts.nextToken);
      if (!m) throw new EbsError('ValidationException', 'The pagination token is not valid', { status: 400, reason: Reason.INVALID_PAGE_TOKEN });
      start = Number(m[1]);
    }
    const from = sorted.findIndex((i) => i >= start);
    if (from < 0) return { indexes: [] };
    const indexes = sorted.slice(from, from + max);
    const more = from + max < sorted.length;
    return { indexes, nextToken: more ? `page:${sorted[from + max]}` : undefined };
  }
}
