/**
 * openWritableLayer: what a writable mount adds to an opened snapshot — a journal on local disk,
 * the OverlayStore that reads and writes through it, and the commit that turns it into a child
 * snapshot.
 *
 * Contract (COMMON.md "[writeback]"):
 * - Without `journalDir`, a fresh journal is created under `journalRoot` (default
 *   defaultJournalRoot()). With `journalDir`: a journal already there is reopened and its durable
 *   writes are kept (it must be for the same parent and volume size, and not be committed or in
 *   the middle of a commit); otherwise a new journal is created there (the directory must be
 *   missing or empty).
 * - `reader` overlays dirty blocks on opened.reader; `writer` takes writes until commit() or
 *   discard() starts, then answers EROFS. commit() waits for writes in progress, flushes, and
 *   commits (committer.ts); it may be called again after a failure (it resumes). A block the
 *   parent is known (without I/O) to hold identically — cached, or known absent for a zero
 *   block — is not uploaded. After a successful commit the journal's data files are gone and the
 *   layer only answers commit() with the same id.
 * - discard() deletes the journal; close() flushes and closes it, leaving it on disk (for
 *   `ebsmount commit --journal DIR` or a later mount with the same --journal-dir) — unless this
 *   layer created it under the journal root and nothing was written (a failed or idle mount leaves no clutter). A commit
 *   without changes removes a journal this layer created under the journal root.
 */
import { readdir, rm } from 'node:fs/promises';
import type { EbsApi, Tag } from '../ebs/api.js';
import { sha256Base64 } from '../ebs/checksum.js';
import { resolveEndpoint } from '../ebs/client-options.js';
import { IoError } from '../fs/io-error.js';
import type { BlockReader, BlockWriter } from '../store/block-store.js';
import type { OpenedVolume } from '../store/open-volume.js';
import { UserError } from '../errors/user-error.js';
import { silentLogger, type Logger } from '../util/log.js';
import type { RetryPolicy } from '../ebs/retry.js';
import { CommitError, commitJournal, resumeHint, type ParentChecksum } from './committer.js';
import { Journal, JournalError } from './journal.js';
import { spaceWarning } from './free-space.js';
import { OverlayStore, WritebackStat } from './overlay-store.js';
import { registerJournal, unregisterJournal } from './journal-registry.js';
import { defaultJournalRoot, newJournalDir, newJournalId } from './paths.js';

export interface WritableLayerOptions {
  api: EbsApi;
  journalDir?: string;
  /** Where a new journal goes when journalDir is not given. Default defaultJournalRoot(). */
  journalRoot?: string;
  description?: string;
  tags?: Tag[];
  uploadConcurrency?: number;
  logger?: Logger;
  /**
   * Recorded in meta.json, so `ebsmount commit --journal` reaches the same service. Default: the
   * env (AWS_ENDPOINT_URL_EBS, AWS_REGION), i.e. what the api was built from without flags.
   */
  endpoint?: string;
  region?: string;
  /** Dirty blocks kept in memory for read-modify-write (default 16). */
  dirtyCacheBlocks?: number;
  retryPolicy?: RetryPolicy;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface WritableLayer {
  reader: BlockReader;
  writer: BlockWriter;
  journalDir: string;
  journalId: string;
  /** True when an existing journal was reopened. */
  resumed: boolean;
  dirtyBlockCount(): number;
  /** The journal's health for `ebsmount status`: writes refused for a full disk, the last one. */
  journalStatus(): JournalStatus;
  commit(onProgress?: (done: number, total: number) => void): Promise<{ snapshotId: string | null; pending?: boolean }>;
  discard(): Promise<void>;
  close(): Promise<void>;
}

export interface JournalStatus {
  dir: string;
  diskFullErrors: number;
  lastDiskFull: { at: string; message: string } | null;
}

export async function openWritableLayer(opened: OpenedVolume, opts: WritableLayerOptions): Promise<WritableLayer> {
  const logger = opts.logger ?? silentLogger;
  let journal: Journal;
  let resumed = false;
  let dir: string;
  try {
    if (opts.journalDir && (await Journal.exists(opts.journalDir))) {
      dir = opts.journalDir;
      const meta = await Journal.readMeta(dir);
      checkReusable(dir, meta, opened);
      journal = await Journal.open(dir, { logger });
      resumed = true;
      logger.info({ dir, dirtyBlocks: journal.dirtyBlockCount }, 'reopened journal');
    } else {
      let journalId = newJournalId();
      if (opts.journalDir) {
        dir = opts.journalDir;
        const entries = await readdir(dir).catch(() => [] as string[]);
        if (entries.length > 0) throw new UserError(`--journal-dir ${dir} is not empty and holds no ebsmount journal`, 2);
      } else {
        ({ dir, journalId } = newJournalDir(opts.journalRoot ?? defaultJournalRoot(), journalId));
      }
      journal = await Journal.create(dir, {
        journalId,
        parentSnapshotId: opened.snapshotId,
        volumeSizeGiB: opened.volumeSizeGiB,
        endpoint: opts.endpoint ?? resolveEndpoint({}),
        region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION,
        description: opts.description,
        tags: opts.tags,
      }, { logger });
      if (opts.journalDir) {
        await registerJournal(opts.journalRoot ?? defaultJournalRoot(), journalId, dir).catch((err: unknown) =>
          logger.warn({ err, dir }, 'could not register the journal for `ebsmount journals`'));
      }
      logger.info({ dir }, 'created journal');
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    if (err instanceof JournalError) throw new UserError(err.message, 1, { cause: err });
    const e = err as NodeJS.ErrnoException;
    throw new UserError(`cannot create the journal: ${e.message}`, 1, { cause: err });
  }

  // The journal may grow to the whole volume: say so when its disk has less room.
  const lowSpace = await spaceWarning(dir, opened.sizeBytes).catch(() => undefined);
  if (lowSpace) logger.warn({ dir }, lowSpace);
  const overlay = new OverlayStore({
    journal,
    lower: opened.reader,
    cacheBlocks: opts.dirtyCacheBlocks,
    stats: opened.stats,
    logger,
  });
  let sealed = false;
  /** Discarded, or committed (its data files deleted). */
  let journalGone = false;
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    const drop = () => inflight.delete(p);
    p.then(drop, drop);
    return p;
  };
  const seal = async (): Promise<void> => {
    sealed = true;
    await Promise.allSettled([...inflight]);
  };

  const writer: BlockWriter = {
    writeBlockRange(index, offsetInBlock, data, writeOpts) {
      if (sealed) return Promise.reject(new IoError('EROFS', 'the volume is being committed or discarded'));
      return track(overlay.writeBlockRange(index, offsetInBlock, data, writeOpts));
    },
    flush(writeOpts) {
      if (journalGone) return Promise.resolve();
      return track(overlay.flush(writeOpts));
    },
  };

  const parentChecksum: ParentChecksum = async (index) => {
    const seen = overlay.parentChecksum(index);
    if (seen !== undefined) return seen;
    if (opened.blockMap.isKnownZero(index)) return 'absent';
    if (!opened.cache.has(index)) return undefined;
    const block = await opened.cache.readBlock(index).catch(() => undefined);
    if (block === undefined) return undefined;
    return block === null ? 'absent' : sha256Base64(block);
  };
  /** A journal this layer created under the root and nobody wrote to is not worth keeping. */
  const forget = (): Promise<void> => unregisterJournal(opts.journalRoot ?? defaultJournalRoot(), journal.journalId).catch(() => {});
  const removeIfUnused = async (): Promise<boolean> => {
    if (resumed || opts.journalDir || journal.dirtyBlockCount > 0) return false;
    journalGone = true;
    await journal.destroy();
    await forget();
    return true;
  };

  let committed: { snapshotId: string | null; pending?: boolean } | undefined;
  return {
    reader: overlay,
    writer,
    journalDir: dir,
    journalId: journal.journalId,
    resumed,
    dirtyBlockCount: () => journal.dirtyBlockCount + overlay.assemblingBlocks,
    journalStatus: () => ({
      dir,
      diskFullErrors: opened.stats.get(WritebackStat.diskFull),
      lastDiskFull: overlay.lastDiskFull ?? null,
    }),
    async commit(onProgress) {
      if (committed) return committed;
      if (journalGone) throw new UserError(`journal ${dir} was discarded`);
      await seal();
      // Blocks still assembling in memory go to the journal (and everything becomes durable).
      try {
        await overlay.flush();
      } catch (err) {
        throw new CommitError(`commit of journal ${dir} failed while making the journal durable: ${(err as Error).message}; ${resumeHint(dir)}`, dir, { cause: err });
      }
      const result = await commitJournal(journal, {
        api: opts.api,
        uploadConcurrency: opts.uploadConcurrency,
        onProgress,
        logger,
        parentChecksum,
        endpoint: opts.endpoint,
        retryPolicy: opts.retryPolicy,
        sleep: opts.sleep,
      });
      committed = { snapshotId: result.snapshotId, ...(result.pending ? { pending: true } : {}) };
      journalGone = true;
      // No child: nothing to remember (a journal dir passed in by the user stays, committed).
      if (result.snapshotId === null && !opts.journalDir) await rm(dir, { recursive: true, force: true }).catch(() => {});
      return committed;
    },
    async discard() {
      await seal();
      overlay.dropAssembling();
      journalGone = true;
      await journal.destroy();
      await forget();
      logger.info({ dir }, 'journal discarded');
    },
    async close() {
      if (journalGone) return;
      await Promise.allSettled([...inflight]);
      // Blocks still assembling in memory go to the journal first.
      await overlay.flush().catch((err: unknown) => logger.error({ err, dir }, 'could not write every block to the journal'));
      if (await removeIfUnused()) return;
      await journal.close();
    },
  };
}

function checkReusable(dir: string, meta: Journal['meta'], opened: OpenedVolume): void {
  if (meta.parentSnapshotId !== opened.snapshotId) {
    throw new UserError(`journal ${dir} belongs to snapshot ${meta.parentSnapshotId}, not ${opened.snapshotId}`, 2);
  }
  if (meta.volumeSizeGiB !== opened.volumeSizeGiB) {
    throw new UserError(`journal ${dir} is for a ${meta.volumeSizeGiB} GiB volume, but ${opened.snapshotId} is ${opened.volumeSizeGiB} GiB`, 2);
  }
  if (meta.state === 'committed') {
    throw new UserError(
      `journal ${dir} was already committed${meta.childSnapshotId ? ` as ${meta.childSnapshotId}` : ' (no changes)'}; use another --journal-dir`,
      2,
    );
  }
  if (meta.state === 'committing') {
    throw new UserError(`journal ${dir} has an unfinished commit; finish it first with: ebsmount commit --journal ${dir}`, 2);
  }
}
