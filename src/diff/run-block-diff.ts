/**
 * runBlockDiff: `ebsmount diff SNAP_A SNAP_B` at block level — no mount, no root.
 *
 * Contract:
 * - Lists ListChangedBlocks(first = A, second = B) over the whole volume (changed-blocks.ts), then,
 *   when a partition-table reader is given, reads B's table (and A's too when block 0 changed,
 *   noting when the two differ) and counts the changed blocks per partition. Reading a table costs
 *   a GetSnapshotBlock or two; the figures printed count them.
 * - Snapshots of different lineages: one UserError saying why EBS cannot compare them. Other API
 *   failures: one line (describeEbsError), naming the snapshot when the message does.
 * - Returns the report; printing is the caller's (block-report.ts formats).
 */
import type { EbsApi } from '../ebs/api.js';
import { EbsError, Reason } from '../ebs/errors.js';
import type { RetryPolicy } from '../ebs/retry.js';
import { describeEbsError } from '../errors/describe-error.js';
import { UserError } from '../errors/user-error.js';
import type { BlockDiffReport } from './block-report.js';
import { listChangedBlocks, type ChangedBlocks } from './changed-blocks.js';
import { partitionCounts, type PartitionSpan } from './partition-counts.js';

/** What the partition-table parser tells about one snapshot's disk. */
export interface DiskTable {
  scheme: 'gpt' | 'mbr' | 'none';
  partitions: PartitionSpan[];
  notes: string[];
}

/** Reads a snapshot's partition table, saying how many GetSnapshotBlock and list calls it made. */
export type TableReader = (snapshotId: string, volumeSizeGiB: number) => Promise<{ table: DiskTable; getRequests: number; listRequests: number }>;

export interface BlockDiffOptions {
  api: EbsApi;
  snapA: string;
  snapB: string;
  endpoint?: string;
  readTable?: TableReader;
  listRate?: number;
  firstPagePolicy?: RetryPolicy;
  signal?: AbortSignal;
  onProgress?: (doneBytes: number, totalBytes: number, changedSoFar: number) => void;
}

export function unrelatedMessage(a: string, b: string): string {
  return (
    `${a} and ${b} are not of one lineage: EBS's ListChangedBlocks compares only snapshots of the same ` +
    `volume (or a snapshot and its descendants); for unrelated snapshots it has no record of shared blocks, ` +
    `so it cannot say which blocks differ`
  );
}

export function describeDiffError(err: unknown, o: { snapA: string; snapB: string; endpoint?: string }): UserError {
  if (err instanceof UserError) return err;
  if (err instanceof EbsError && err.type === 'ValidationException' && err.reason === Reason.UNRELATED_SNAPSHOTS) {
    return new UserError(unrelatedMessage(o.snapA, o.snapB), 1, { cause: err });
  }
  const named = err instanceof Error ? [o.snapA, o.snapB].find((s) => err.message.includes(s)) : undefined;
  return new UserError(describeEbsError(err, { endpoint: o.endpoint, snapshotId: named }), 1, { cause: err });
}

function sameTable(x: DiskTable, y: DiskTable): boolean {
  const key = (t: DiskTable) => JSON.stringify([t.scheme, t.partitions.map((p) => [p.number, p.startBytes, p.sizeBytes])]);
  return key(x) === key(y);
}

export async function runBlockDiff(o: BlockDiffOptions): Promise<BlockDiffReport> {
  const ctx = { snapA: o.snapA, snapB: o.snapB, endpoint: o.endpoint };
  let changed: ChangedBlocks;
  let volumeSizeGiB: number;
  let listRequests: number;
  try {
    ({ blocks: changed, volumeSizeGiB, listRequests } = await listChangedBlocks(o.api, o.snapA, o.snapB, {
      listRate: o.listRate,
      firstPagePolicy: o.firstPagePolicy,
      signal: o.signal,
      onPage: (page, soFar) => {
        const last = page.blocks[page.blocks.length - 1];
        const total = page.volumeSizeGiB * 1024 ** 3;
        const done = page.nextToken ? (last ? (last.index + 1) * page.blockSize : 0) : total;
        o.onProgress?.(done, total, soFar);
      },
    }));
  } catch (err) {
    throw describeDiffError(err, ctx);
  }
  const report: BlockDiffReport = {
    snapA: o.snapA,
    snapB: o.snapB,
    volumeSizeGiB,
    changed,
    notes: [],
    requests: { listChanged: listRequests, listBlocks: 0, get: 0 },
  };
  if (!o.readTable) return report;
  try {
    const b = await o.readTable(o.snapB, volumeSizeGiB);
    report.requests.get += b.getRequests;
    report.requests.listBlocks += b.listRequests;
    report.notes.push(...b.table.notes.map((n) => `${o.snapB}: ${n}`));
    if (changed.has(0)) {
      const a = await o.readTable(o.snapA, volumeSizeGiB);
      report.requests.get += a.getRequests;
      report.requests.listBlocks += a.listRequests;
      if (!sameTable(a.table, b.table)) {
        report.notes.push(`the partition table changed between ${o.snapA} (${a.table.scheme}, ${a.table.partitions.length} partitions) and ${o.snapB}: counts use ${o.snapB}'s`);
      }
    }
    report.partitionTable = {
      scheme: b.table.scheme,
      readFrom: o.snapB,
      counts: b.table.scheme === 'none' ? undefined : partitionCounts(changed, b.table.partitions),
    };
  } catch (err) {
    report.notes.push(`partition table not read: ${describeDiffError(err, ctx).message}`);
  }
  return report;
}
