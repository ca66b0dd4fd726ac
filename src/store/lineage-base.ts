/**
 * chooseLineageBase: which snapshot's local blocks a snapshot C may borrow (README "Lineage").
 *
 * Rule:
 * - `--base P` given: ListChangedBlocks(P, C) must answer; UNRELATED_SNAPSHOTS is a UserError
 *   (`--base P is not of the lineage of C`), other failures are the EbsError as thrown.
 * - Otherwise the candidates are the most recently used snapshots in the disk cache with C's
 *   volume size that still hold blocks, minus pairs already known unrelated, at most
 *   MAX_CANDIDATES of them (so at most that many list calls). The first whose first page of
 *   ListChangedBlocks answers is the base; an UNRELATED_SNAPSHOTS answer is remembered in the
 *   cache (never asked again); any other failure skips that candidate. No candidate: no base.
 * - The returned ChangedBlockSet keeps listing in the background.
 */
import type { EbsApi } from '../ebs/api.js';
import { EbsError, Reason } from '../ebs/errors.js';
import type { RequestLimiter } from '../ebs/limiter.js';
import type { RetryPolicy } from '../ebs/retry.js';
import { UserError } from '../errors/user-error.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import type { Stats } from '../util/stats.js';
import type { DiskCache } from './disk-cache.js';
import { ChangedBlockSet } from './lineage.js';

export const MAX_CANDIDATES = 3;
/** The first page of a candidate: a few quick attempts (a base is an optimisation). */
const CANDIDATE_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 1_000, budgetMs: 5_000 };

export interface ChooseBaseOptions {
  api: EbsApi;
  snapshotId: string;
  volumeSizeGiB: number;
  /** `--base` */
  explicitBase?: string;
  /** Where cached candidates come from (none: only an explicit base or `extraCandidates`). */
  cache?: DiskCache;
  /** Snapshots tried before the cached ones (other volumes of the same mount). */
  extraCandidates?: string[];
  listLimiter?: RequestLimiter;
  stats: Stats;
  logger?: Logger;
  retryPolicy?: RetryPolicy;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

function isUnrelated(err: unknown): boolean {
  return err instanceof EbsError && err.type === 'ValidationException' && err.reason === Reason.UNRELATED_SNAPSHOTS;
}

export async function chooseLineageBase(opts: ChooseBaseOptions): Promise<ChangedBlockSet | null> {
  const logger = opts.logger ?? silentLogger;
  const start = (base: string) =>
    new ChangedBlockSet({
      api: opts.api,
      baseSnapshotId: base,
      snapshotId: opts.snapshotId,
      listLimiter: opts.listLimiter,
      stats: opts.stats,
      logger,
      policy: opts.retryPolicy,
      firstPagePolicy: opts.explicitBase ? opts.retryPolicy : CANDIDATE_RETRY,
      sleep: opts.sleep,
    });
  if (opts.explicitBase) {
    if (opts.explicitBase === opts.snapshotId) throw new UserError(`--base ${opts.explicitBase} is the snapshot itself`, 2);
    const set = start(opts.explicitBase);
    try {
      await set.ready;
    } catch (err) {
      if (isUnrelated(err)) {
        opts.cache?.markUnrelated(opts.explicitBase, opts.snapshotId);
        throw new UserError(`--base ${opts.explicitBase} is not of the lineage of ${opts.snapshotId} (ListChangedBlocks: UNRELATED_SNAPSHOTS)`);
      }
      throw err;
    }
    return set;
  }
  const tried = new Set<string>();
  const candidates = [
    ...(opts.extraCandidates ?? []).filter((s) => s !== opts.snapshotId && !opts.cache?.isUnrelated(s, opts.snapshotId)),
    ...(opts.cache?.recentSnapshots(opts.volumeSizeGiB, opts.snapshotId, MAX_CANDIDATES) ?? []),
  ];
  for (const base of candidates) {
    if (tried.has(base) || tried.size >= MAX_CANDIDATES) continue;
    tried.add(base);
    const set = start(base);
    try {
      await set.ready;
      logger.info({ base, snapshotId: opts.snapshotId }, 'lineage base chosen: unchanged blocks come from its local copies');
      return set;
    } catch (err) {
      set.stop();
      if (isUnrelated(err)) {
        opts.cache?.markUnrelated(base, opts.snapshotId);
        logger.debug({ base, snapshotId: opts.snapshotId }, 'not of the same lineage (remembered)');
      } else {
        logger.info({ base, errorType: (err as { type?: string })?.type }, 'lineage candidate skipped');
      }
    }
  }
  return null;
}
