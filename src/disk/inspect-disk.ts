/**
 * inspectDisk: the partition table of a disk and the filesystem of each data partition (or of
 * the bare disk when there is no table) — what `ebsmount inspect` prints, what a mount turns into
 * partition files and what `browse` mounts. Pure: everything comes through the ByteSource.
 */
import { sliceSource, type ByteSource } from './byte-source.js';
import { probeFilesystem, type FilesystemInfo } from './fs-probe.js';
import { dataPartitions, type Partition, type PartitionTable } from './partition.js';
import { readPartitionTable } from './partition-table.js';

export interface InspectedPartition {
  partition: Partition;
  filesystem: FilesystemInfo;
}

export interface DiskReport {
  table: PartitionTable;
  /** The data partitions with their filesystems (empty for a bare disk). */
  partitions: InspectedPartition[];
  /** The whole disk's filesystem when there is no table. */
  bare?: FilesystemInfo;
}

export async function inspectDisk(src: ByteSource): Promise<DiskReport> {
  const table = await readPartitionTable(src);
  if (table.scheme === 'none' && table.notes.length === 0) {
    return { table, partitions: [], bare: await probeFilesystem(src) };
  }
  const partitions: InspectedPartition[] = [];
  for (const p of dataPartitions(table)) {
    let filesystem: FilesystemInfo;
    try {
      filesystem = await probeFilesystem(sliceSource(src, p.startBytes, p.sizeBytes));
    } catch (err) {
      filesystem = { type: 'unknown', notes: [`cannot read the partition: ${(err as Error).message}`] };
    }
    partitions.push({ partition: p, filesystem });
  }
  return { table, partitions };
}
