/**
 * partitionCounts: how many changed blocks fall in each partition of a disk. Pure.
 *
 * Contract: a partition covers the 512 KiB blocks its byte range touches (so a block that holds
 * the end of one partition and the start of the next counts in both); `outside` counts changed
 * blocks in no partition at all (the partition table itself, gaps, space after the last one).
 * Partitions come from the partition-table parser (src/disk/); only the fields below are used.
 */
import { BLOCK_SIZE } from '../ebs/constants.js';
import type { ChangedBlocks } from './changed-blocks.js';

export interface PartitionSpan {
  number: number;
  startBytes: number;
  sizeBytes: number;
  typeName?: string;
}

export interface PartitionCount {
  number: number;
  typeName?: string;
  startBytes: number;
  sizeBytes: number;
  firstBlock: number;
  lastBlock: number;
  changedBlocks: number;
}

export interface PartitionCounts {
  partitions: PartitionCount[];
  outside: number;
}

export function blockSpan(p: { startBytes: number; sizeBytes: number }): { firstBlock: number; lastBlock: number } {
  return {
    firstBlock: Math.floor(p.startBytes / BLOCK_SIZE),
    lastBlock: Math.floor((p.startBytes + Math.max(1, p.sizeBytes) - 1) / BLOCK_SIZE),
  };
}

export function partitionCounts(changed: ChangedBlocks, partitions: readonly PartitionSpan[]): PartitionCounts {
  const rows = [...partitions]
    .sort((a, b) => a.number - b.number)
    .map((p) => {
      const { firstBlock, lastBlock } = blockSpan(p);
      return {
        number: p.number,
        ...(p.typeName !== undefined ? { typeName: p.typeName } : {}),
        startBytes: p.startBytes,
        sizeBytes: p.sizeBytes,
        firstBlock,
        lastBlock,
        changedBlocks: changed.countIn(firstBlock, lastBlock),
      };
    });
  let outside = 0;
  for (const { index } of changed.entries()) {
    if (!rows.some((r) => index >= r.firstBlock && index <= r.lastBlock)) outside++;
  }
  return { partitions: rows, outside };
}
