/**
 * Committer: turns a journal's dirty blocks into a child snapshot of its parent.
 *
 * Contract:
 * - meta.state committing → StartSnapshot{VolumeSize, ParentSnapshotId, ClientToken derived from
 *   the journal id, Description, Tags, Timeout} → PutSnapshotBlock of every dirty block (full
 *   512 KiB with its SHA-256; all-zero blocks included) by `uploadConcurrency` workers → Complete-
 *   Snapshot{ChangedBlocksCount, LINEAR checksum} → meta.state committed with childSnapshotId,
 *   then blocks.dat and index.log are deleted (meta.json stays, so a second commit answers the
 *   same id without a request).
 * - Every request is retried (WRITE_RETRY) on throttling, 5xx, network failures and, after the
 *   start, "snapshot does not exist" (the ~2 minute window of a new snapshot).
 * - Idempotent across crashes: the ClientToken depends only on the journal (and a generation
 *   bumped by `restart`), so a resumed commit gets the same snapshot back from StartSnapshot.
 *   A child that an earlier attempt already completed (StartSnapshot says completed, a put or
 *   the completion says "not pending", or listing the child works) counts as done. A child in
 *   state error is explained, with the way out (`--restart`).
 * - Skipping: on a first attempt only, a block may be skipped when `parentChecksum` knows,
 *   without I/O, that the parent holds exactly that content (an all-zero block where the parent
 *   has none, or equal SHA-256). Not the zero blocks where the parent has none when the child
 *   turns out encrypted (StartSnapshot answers with a KmsKeyArn: an encrypted snapshot may read
 *   random data where it has no block). A resumed attempt writes every dirty block, so its count
 *   and checksum cover whatever an earlier attempt put. Nothing to write → no snapshot (null).
 * - Block data read back from the journal is checked against the SHA-256 recorded when it became
 *   durable: a damaged journal fails the commit instead of uploading wrong bytes.
 * - A child that CompleteSnapshot leaves `pending` (the real service does) is polled (backoff up
 *   to 30 s) for up to `completionWaitMs` (default 10 min): completed → done; error → CommitError
 *   with the way out (`--restart`); still pending → the result says `pending` and the journal is
 *   kept, in state committing with `completionRequested`, until a later commit sees the child
 *   completed (it only polls then: nothing is uploaded again).
 * - Failure throws CommitError (a UserError): one line naming the cause and how to resume
 *   (`ebsmount commit --journal DIR`); the journal is kept, in state committing.
 */
import { createHash } from 'node:crypto';
import type { EbsApi } from '../ebs/api.js';
import { LinearChecksum, sha256Base64Async } from '../ebs/checksum.js';
import { BLOCK_SIZE, MIN_LIST_RESULTS, ZERO_BLOCK_SHA256 } from '../ebs/constants.js';
import { EbsError, Reason, retryKind } from '../ebs/errors.js';
import { WRITE_RETRY, abortableSleep, withRetry, type RetryPolicy } from '../ebs/retry.js';
import { describeEbsError } from '../errors/describe-error.js';
import { UserError } from '../errors/user-error.js';
import { silentLogger, type Logger } from '../util/log.js';
import { JournalDamagedError, type Journal } from './journal.js';

/** StartSnapshot Timeout: long enough to resume a crashed commit the next day. */
export const DEFAULT_SNAPSHOT_TIMEOUT_MIN = 1_440;
export const DEFAULT_UPLOAD_CONCURRENCY = 64;

/** What is known without I/O about the parent's block: 'absent' (reads as zeros), its SHA-256, or nothing. */
export type ParentChecksum = (index: number) => Promise<string | 'absent' | undefined> | string | 'absent' | undefined;

export interface CommitOptions {
  api: EbsApi;
  uploadConcurrency?: number;
  onProgress?: (done: number, total: number) => void;
  logger?: Logger;
  retryPolicy?: RetryPolicy;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  parentChecksum?: ParentChecksum;
  /** Used on the first attempt only (fixed in meta.json afterwards). */
  snapshotTimeoutMinutes?: number;
  /** Start over with a new ClientToken (after the earlier child went to error). */
  restart?: boolean;
  /** Delete blocks.dat and index.log once the child is completed. Default true. */
  dropDataWhenDone?: boolean;
  /** Names the endpoint in error messages. */
  endpoint?: string;
  signal?: AbortSignal;
  /** How long to wait for a child CompleteSnapshot left pending. Default 10 minutes. */
  completionWaitMs?: number;
  now?: () => number;
}

export const DEFAULT_COMPLETION_WAIT_MS = 10 * 60_000;

export interface CommitResult {
  snapshotId: string | null;
  /** Blocks put by this run. */
  blocksWritten: number;
  /** Dirty blocks left out because the parent holds the same content. */
  blocksSkipped: number;
  /** The journal was already committed: nothing was done. */
  alreadyCommitted: boolean;
  /** This run continued an earlier, interrupted commit. */
  resumed: boolean;
  /** The child was still pending when the wait ended: the journal is kept until it is seen completed. */
  pending?: boolean;
}

export class CommitError extends UserError {
  constructor(message: string, readonly journalDir: string, opts?: { cause?: unknown }) {
    super(message, 1, opts);
  }
}

/** ClientToken of a journal's child: deterministic, at most 64 characters. */
export function clientTokenFor(journalId: string, generation = 0): string {
  const base = `ebsmount-${journalId}${generation > 0 ? `-r${generation}` : ''}`;
  if (base.length <= 64 && /^[\x21-\x7e]+$/.test(base)) return base;
  return `ebsmount-${createHash('sha256').update(base).digest('hex').slice(0, 48)}`;
}

export function resumeHint(dir: string): string {
  return `the journal is kept; resume with: ebsmount commit --journal ${dir}`;
}

type ChildStatus = 'completed' | 'pending' | 'error' | 'missing';

export async function commitJournal(journal: Journal, opts: CommitOptions): Promise<CommitResult> {
  const meta = journal.meta;
  const dir = journal.dir;
  const logger = opts.logger ?? silentLogger;
  if (meta.state === 'committed') {
    return { snapshotId: meta.childSnapshotId ?? null, blocksWritten: 0, blocksSkipped: 0, alreadyCommitted: true, resumed: false };
  }
  const resumed = meta.state === 'committing';
  const policy = opts.retryPolicy ?? WRITE_RETRY;
  const api = opts.api;
  let childId: string | undefined = resumed && !opts.restart ? (meta.childSnapshotId ?? undefined) : undefined;

  const fail = (err: unknown, stage: string): CommitError => {
    if (err instanceof CommitError) return err;
    if (err instanceof JournalDamagedError) return new CommitError(`commit refused: ${err.message}`, dir, { cause: err });
    // Before the child exists, a missing snapshot is the parent.
    const ctx = childId
      ? { snapshotId: childId, role: 'child snapshot' }
      : { snapshotId: meta.parentSnapshotId, role: 'parent snapshot' };
    const why = describeEbsError(err, { ...ctx, endpoint: opts.endpoint, op: 'write' });
    return new CommitError(`commit of journal ${dir} failed while ${stage}: ${why}; ${resumeHint(dir)}`, dir, { cause: err });
  };
  const noteError = async (e: CommitError): Promise<void> => {
    await journal.updateMeta({ lastError: e.message }).catch(() => {});
  };

  try {
    await journal.flush();
  } catch (err) {
    throw fail(err, 'making the journal durable');
  }

  // What to write.
  const dirty = journal.dirtyIndexes();
  let toWrite: number[] = [];
  let skipped = 0;
  /** Skipped as zeros where the parent has no block: written after all if the child is encrypted. */
  const zerosOverAbsent: number[] = [];
  if (!resumed && opts.parentChecksum) {
    for (const index of dirty) {
      const known = await opts.parentChecksum(index);
      const mine = journal.durableChecksum(index);
      const same = known !== undefined && mine !== undefined && (known === 'absent' ? mine === ZERO_BLOCK_SHA256 : known === mine);
      if (same) skipped++;
      else toWrite.push(index);
      if (same && known === 'absent') zerosOverAbsent.push(index);
    }
  } else {
    toWrite.push(...dirty);
  }

  const finish = async (snapshotId: string | null, written: number, confirmed: boolean): Promise<CommitResult> => {
    await journal.updateMeta({
      state: 'committed',
      childSnapshotId: snapshotId,
      committedAt: new Date().toISOString(),
      committedBlocks: written,
      lastError: undefined,
      completionRequested: undefined,
    });
    if (confirmed && opts.dropDataWhenDone !== false) {
      await journal.dropData().catch((err: unknown) => logger.warn({ err, dir }, 'could not delete the committed journal data'));
    }
    logger.info({ dir, snapshotId, blocksWritten: written, blocksSkipped: skipped }, snapshotId ? 'commit done' : 'nothing to commit');
    return { snapshotId, blocksWritten: written, blocksSkipped: skipped, alreadyCommitted: false, resumed };
  };

  if (toWrite.length === 0) return finish(null, 0, true);

  const generation = (meta.tokenGeneration ?? 0) + (opts.restart && resumed ? 1 : 0);
  const timeoutMinutes = meta.snapshotTimeoutMinutes ?? opts.snapshotTimeoutMinutes ?? DEFAULT_SNAPSHOT_TIMEOUT_MIN;
  try {
    await journal.updateMeta({
      state: 'committing',
      committingSince: meta.committingSince && !opts.restart ? meta.committingSince : new Date().toISOString(),
      snapshotTimeoutMinutes: timeoutMinutes,
      tokenGeneration: generation,
      childSnapshotId: childId,
      completionRequested: childId !== undefined && meta.completionRequested === true,
    });
  } catch (err) {
    throw fail(err, 'updating the journal');
  }

  const retry = <T>(fn: () => Promise<T>, afterStart: boolean, what: string): Promise<T> =>
    withRetry(fn, {
      policy,
      classify: (err) => retryKind(err, { afterStart }),
      sleep: opts.sleep,
      signal: opts.signal,
      onRetry: ({ attempt, kind, err, delayMs }) =>
        logger.debug({ what, attempt, kind, delayMs, err: errText(err) }, 'retrying'),
    });

  try {
    // An earlier attempt may have finished the child already.
    if (childId) {
      const status = await probeChild(api, childId, opts.signal);
      if (status === 'completed') return await finish(childId, toWrite.length, true);
      if (meta.completionRequested) {
        // Everything was put and completion requested: only its outcome is missing.
        if (status === 'error') throw errorStateError(dir, childId);
        if (status === 'pending') return await awaitCompletion(childId);
      }
    }

    let stage = 'starting the child snapshot';
    try {
      const started = await retry(
        () => api.startSnapshot({
          volumeSizeGiB: meta.volumeSizeGiB,
          parentSnapshotId: meta.parentSnapshotId,
          description: meta.description,
          tags: meta.tags.length > 0 ? meta.tags : undefined,
          clientToken: clientTokenFor(meta.journalId, generation),
          timeoutMinutes,
          signal: opts.signal,
        }),
        false,
        'StartSnapshot',
      );
      childId = started.snapshotId;
      logger.info({ dir, childSnapshotId: childId, parent: meta.parentSnapshotId, blocks: toWrite.length }, 'child snapshot started');
      await journal.updateMeta({ childSnapshotId: childId });
      if (started.status === 'completed') return await finish(childId, toWrite.length, true);
      if (started.status === 'error') throw errorStateError(dir, childId);
      if (started.kmsKeyArn !== undefined && zerosOverAbsent.length > 0) {
        // An encrypted snapshot may read random data where it has no block (DESIGN §1).
        toWrite = [...toWrite, ...zerosOverAbsent].sort((a, b) => a - b);
        skipped -= zerosOverAbsent.length;
        logger.info({ dir, childSnapshotId: childId, blocks: zerosOverAbsent.length }, 'encrypted parent: writing zero blocks it lacks too');
      }

      stage = 'uploading blocks';
      const child = childId;
      const linear = await uploadBlocks(journal, toWrite, child, opts, retry);
      if (linear === 'not-pending') return await settleNotPending(child);

      stage = 'completing the child snapshot';
      let status: string;
      try {
        ({ status } = await retry(
          () => api.completeSnapshot(child, toWrite.length, { linearChecksum: linear, signal: opts.signal }),
          true,
          'CompleteSnapshot',
        ));
      } catch (err) {
        if (isNotPending(err)) return await settleNotPending(child);
        throw err;
      }
      if (status === 'error') {
        throw new CommitError(
          `the service rejected child snapshot ${child} of journal ${dir} (status error: block count or checksum did not match); `
          + `start it over with: ebsmount commit --journal ${dir} --restart`,
          dir,
        );
      }
      if (status !== 'completed') {
        await journal.updateMeta({ completionRequested: true });
        stage = 'waiting for the child snapshot to complete';
        return await awaitCompletion(child);
      }
      return await finish(child, toWrite.length, true);
    } catch (err) {
      throw fail(err, stage);
    }
  } catch (err) {
    const e = fail(err, 'committing');
    await noteError(e);
    throw e;
  }

  /** Polls a child whose completion was requested; the journal is kept unless it is seen completed. */
  async function awaitCompletion(id: string): Promise<CommitResult> {
    const now = opts.now ?? Date.now;
    const sleep = opts.sleep ?? abortableSleep;
    const deadline = now() + (opts.completionWaitMs ?? DEFAULT_COMPLETION_WAIT_MS);
    let delayMs = 1_000;
    logger.info({ dir, childSnapshotId: id }, 'child snapshot pending: waiting until it is completed');
    for (;;) {
      let status: ChildStatus | 'unknown';
      try {
        status = await probeChild(api, id, opts.signal);
      } catch (err) {
        logger.warn({ dir, childSnapshotId: id, err: errText(err) }, 'could not learn the child snapshot\'s status');
        status = 'unknown';
      }
      if (status === 'completed') return finish(id, toWrite.length, true);
      if (status === 'error') throw errorStateError(dir, id);
      if (now() + delayMs > deadline) break;
      await sleep(delayMs, opts.signal);
      delayMs = Math.min(30_000, delayMs * 2);
    }
    logger.warn({ dir, childSnapshotId: id }, 'child snapshot still pending: the journal is kept until it is seen completed');
    return { snapshotId: id, blocksWritten: toWrite.length, blocksSkipped: skipped, alreadyCommitted: false, resumed, pending: true };
  }

  async function settleNotPending(id: string): Promise<CommitResult> {
    const status = await probeChild(api, id, opts.signal);
    if (status === 'completed') return finish(id, toWrite.length, true);
    if (status === 'error') throw errorStateError(dir, id);
    throw new CommitError(`child snapshot ${id} of journal ${dir} is ${status}, not writable; ${resumeHint(dir)}`, dir);
  }
}

function errorStateError(dir: string, id: string): CommitError {
  return new CommitError(
    `child snapshot ${id}, started by an earlier commit of journal ${dir}, is in state error (its timeout passed or the service `
    + `rejected it); the journal is kept; start a new child with: ebsmount commit --journal ${dir} --restart`,
    dir,
  );
}

function isNotPending(err: unknown): boolean {
  return err instanceof EbsError && err.type === 'ValidationException' && err.reason === Reason.SNAPSHOT_NOT_PENDING
    && /\b(completed|error)\b/i.test(err.message);
}

/** Whether the child can be read (completed), and if not, its status from the error message. */
async function probeChild(api: EbsApi, id: string, signal?: AbortSignal): Promise<ChildStatus> {
  try {
    await withRetry(() => api.listSnapshotBlocks(id, { maxResults: MIN_LIST_RESULTS, signal }), {
      policy: { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 2_000, budgetMs: 15_000 },
      classify: (err) => retryKind(err),
      signal,
    });
    return 'completed';
  } catch (err) {
    if (err instanceof EbsError && err.type === 'ResourceNotFoundException') return 'missing';
    if (err instanceof EbsError && err.type === 'ValidationException') {
      const m = /status:?\s*(pending|error|completed)/i.exec(err.message) ?? /\bis (pending|error|completed)\b/i.exec(err.message);
      const s = m?.[1]?.toLowerCase();
      if (s === 'error') return 'error';
      if (s === 'pending') return 'pending';
    }
    throw err;
  }
}

/** Puts every block; resolves to the LINEAR checksum, or 'not-pending' when the child stopped taking blocks. */
async function uploadBlocks(
  journal: Journal,
  indexes: number[],
  childId: string,
  opts: CommitOptions,
  retry: <T>(fn: () => Promise<T>, afterStart: boolean, what: string) => Promise<T>,
): Promise<string | 'not-pending'> {
  const linear = new LinearChecksum();
  const total = indexes.length;
  const concurrency = Math.max(1, Math.min(opts.uploadConcurrency ?? DEFAULT_UPLOAD_CONCURRENCY, total));
  const zeroBlock = Buffer.alloc(BLOCK_SIZE);
  let next = 0;
  let done = 0;
  let firstError: unknown;
  let notPending = false;
  opts.onProgress?.(0, total);

  const worker = async (): Promise<void> => {
    // One buffer per worker, reused block after block (a put is done with it when it resolves).
    const buf = Buffer.allocUnsafeSlow(BLOCK_SIZE);
    while (firstError === undefined && !notPending && next < total) {
      const index = indexes[next++]!;
      try {
        const sha = journal.durableChecksum(index);
        if (sha === undefined) throw new Error(`block ${index} changed after the commit started`);
        const data = (await journal.readBlockInto(index, buf, { verify: false })) ? buf : zeroBlock;
        // Hashed in the threadpool: the event loop keeps the other uploads moving meanwhile.
        const actual = data === zeroBlock ? ZERO_BLOCK_SHA256 : await sha256Base64Async(data);
        if (actual !== sha) {
          const what = `block ${index} in blocks.dat does not match its recorded SHA-256`;
          if (!journal.meta.damage) await journal.updateMeta({ damage: what }).catch(() => {});
          throw new JournalDamagedError(journal.dir, [what]);
        }
        await retry(
          () => opts.api.putSnapshotBlock(childId, index, data, sha, { progress: Math.floor((done * 100) / total), signal: opts.signal }),
          true,
          'PutSnapshotBlock',
        );
        linear.add(index, sha);
        done++;
        opts.onProgress?.(done, total);
      } catch (err) {
        if (isNotPending(err)) notPending = true;
        else firstError ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (firstError !== undefined) throw firstError;
  if (notPending) return 'not-pending';
  return linear.digest();
}

function errText(err: unknown): string {
  return err instanceof EbsError ? `${err.type}: ${err.message}` : String(err);
}
