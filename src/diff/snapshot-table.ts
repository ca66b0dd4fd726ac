/**
 * readSnapshotTable: a snapshot's partition table, read without mounting — the TableReader the
 * block diff uses. Opens the snapshot's read stack (one ListSnapshotBlocks call; no background
 * count, no read-ahead) and hands browse's parser (src/disk/) a ByteSource over it, so only the
 * blocks holding the table are fetched (block 0; the disk's last block when the primary GPT is
 * damaged). The data partitions (an MBR extended container is left out) are returned with the
 * requests it cost.
 */
import type { EbsApi } from '../ebs/api.js';
import { blockReaderSource } from '../disk/byte-source.js';
import { readPartitionTable } from '../disk/partition-table.js';
import { dataPartitions } from '../disk/partition.js';
import { openSnapshotVolume } from '../store/open-volume.js';
import { StatKey } from '../util/stats.js';
import type { Logger } from '../util/log.js';
import type { TableReader } from './run-block-diff.js';

export function snapshotTableReader(api: EbsApi, logger?: Logger): TableReader {
  return async (snapshotId) => {
    const opened = await openSnapshotVolume(api, snapshotId, {
      cacheSizeBytes: 8 * 1024 * 1024,
      readAheadBytes: 0,
      maxConcurrency: 4,
      backgroundCount: false,
      logger,
    });
    try {
      const t = await readPartitionTable(blockReaderSource(opened.cache, opened.sizeBytes));
      return {
        table: {
          scheme: t.scheme,
          partitions: dataPartitions(t).map((p) => ({ number: p.number, startBytes: p.startBytes, sizeBytes: p.sizeBytes, typeName: p.typeName })),
          notes: t.notes,
        },
        getRequests: opened.stats.get(StatKey.ebsGetRequests),
        listRequests: opened.stats.get(StatKey.ebsListRequests),
      };
    } finally {
      opened.close();
    }
  };
}
