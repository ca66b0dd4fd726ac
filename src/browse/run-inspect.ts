/**
 * runInspect: what `ebsmount inspect SNAP [--json]` does — no mount, no root. Opens the snapshot
 * (one list call), reads the partition table and each partition's superblock through the block
 * cache (no read-ahead: only the blocks the parser asks for are fetched), prints the report and
 * how many blocks and requests it cost.
 *
 * Output: the table (or with --json one JSON document: the DiskReportJson plus snapshotId,
 * volumeSizeGiB and `fetched`) on stdout; errors as one line (UserError).
 */
import type { EbsApi } from '../ebs/api.js';
import { toUserError } from '../errors/describe-error.js';
import { blockReaderSource } from '../disk/byte-source.js';
import { inspectDisk, type DiskReport } from '../disk/inspect-disk.js';
import { openSnapshotVolume } from '../store/open-volume.js';
import { formatBytes } from '../util/format.js';
import type { Logger } from '../util/log.js';
import { diskReportJson, formatDiskReport, type DiskReportJson } from './report-format.js';

export interface FetchCounts {
  blocks: number;
  bytes: number;
  getRequests: number;
  listRequests: number;
}

export interface InspectResult {
  snapshotId: string;
  volumeSizeGiB: number;
  report: DiskReport;
  fetched: FetchCounts;
}

export async function inspectSnapshot(api: EbsApi, snapshotId: string, opts: { logger?: Logger; endpoint?: string } = {}): Promise<InspectResult> {
  let opened;
  try {
    opened = await openSnapshotVolume(api, snapshotId, { cacheSizeBytes: 32 * 1024 * 1024, maxConcurrency: 8, backgroundCount: false, logger: opts.logger });
  } catch (err) {
    throw toUserError(err, { snapshotId, endpoint: opts.endpoint });
  }
  try {
    const report = await inspectDisk(blockReaderSource(opened.cache, opened.sizeBytes));
    const s = opened.stats;
    const blocks = s.get('blocks.fetched');
    return {
      snapshotId,
      volumeSizeGiB: opened.volumeSizeGiB,
      report,
      fetched: { blocks, bytes: blocks * 524288, getRequests: s.get('ebs.get.requests'), listRequests: s.get('ebs.list.requests') },
    };
  } catch (err) {
    throw toUserError(err, { snapshotId, endpoint: opts.endpoint });
  } finally {
    opened.close();
  }
}

export function inspectJson(r: InspectResult): DiskReportJson & { snapshotId: string; volumeSizeGiB: number; fetched: FetchCounts } {
  return { snapshotId: r.snapshotId, volumeSizeGiB: r.volumeSizeGiB, ...diskReportJson(r.report), fetched: r.fetched };
}

export function formatInspect(r: InspectResult): string {
  const f = r.fetched;
  return `${formatDiskReport(r.snapshotId, r.report)}\nfetched ${f.blocks} block${f.blocks === 1 ? '' : 's'} (${formatBytes(f.bytes)}) in ${f.getRequests} GetSnapshotBlock and ${f.listRequests} ListSnapshotBlocks request${f.listRequests === 1 ? '' : 's'}\n`;
}
