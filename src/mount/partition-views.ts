/**
 * partitionViews: the files a mount serves for one volume — the whole disk, then one view per
 * data partition of its table (`SNAP-pN.img`, N = the table's number), read through the volume's
 * own reader (the cache; on a writable mount the overlay, so a table written in this session
 * counts). Reads only the table's sectors.
 *
 * Contract: never fails the mount. A damaged table gives the partitions it still lists, plus
 * notes (each logged as a warning and shown by `ebsmount status`); an unreadable one (EIO) gives
 * only the whole-disk file and a note. `enabled: false` (--no-partitions) reads nothing.
 */
import { blockReaderSource } from '../disk/byte-source.js';
import { dataPartitions } from '../disk/partition.js';
import { readPartitionTable } from '../disk/partition-table.js';
import { wholeVolumeView, type FileView } from '../fs/file-view.js';
import type { VolumeFile } from '../fs/volume-file.js';
import type { BlockReader } from '../store/block-store.js';
import type { Logger } from '../util/log.js';

export interface PartitionTableStatus {
  scheme: 'gpt' | 'mbr' | 'none' | 'off' | 'unreadable';
  notes: string[];
}

export interface VolumeViews {
  views: FileView[];
  table: PartitionTableStatus;
}

export function partitionFileName(volumeId: string, number: number): string {
  return `${volumeId}-p${number}.img`;
}

export async function partitionViews(
  volume: VolumeFile,
  volumeId: string,
  reader: BlockReader,
  opts: { enabled: boolean; logger: Logger },
): Promise<VolumeViews> {
  const whole = wholeVolumeView(volume, volumeId);
  if (!opts.enabled) return { views: [whole], table: { scheme: 'off', notes: [] } };
  let table;
  try {
    table = await readPartitionTable(blockReaderSource(reader, volume.sizeBytes));
  } catch (err) {
    const note = `cannot read the partition table: ${(err as Error).message}`;
    opts.logger.warn({ volumeId }, note);
    return { views: [whole], table: { scheme: 'unreadable', notes: [note] } };
  }
  for (const note of table.notes) opts.logger.warn({ volumeId, scheme: table.scheme }, `partition table: ${note}`);
  const views: FileView[] = [whole];
  for (const p of dataPartitions(table)) {
    views.push({
      name: partitionFileName(volumeId, p.number),
      volumeId,
      volume,
      offset: p.startBytes,
      length: p.sizeBytes,
      writable: volume.writable,
      partition: p.number,
    });
  }
  opts.logger.info({ volumeId, scheme: table.scheme, files: views.map((v) => v.name) }, 'partition files');
  return { views, table: { scheme: table.scheme, notes: table.notes } };
}
