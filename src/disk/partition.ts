/**
 * What a partition table says, in one shape for GPT and MBR. Pure data, no I/O.
 *
 * - `number` is the table's own number, as the kernel names `loop0pN`: a GPT entry's index + 1,
 *   MBR primaries 1–4, logical partitions 5, 6... in chain order.
 * - LBAs are 512-byte sectors (EBS volumes present 512-byte logical sectors); `startBytes` and
 *   `sizeBytes` are the same range in bytes. `lastLba` is inclusive.
 * - `notes` hold every anomaly found (damaged header, backup used, overlaps, entries past the
 *   disk's end, EBR loops...): one readable sentence each. A table with notes is still usable
 *   for the partitions it lists; a partition that cannot be trusted is left out and noted.
 */
export const SECTOR_SIZE = 512;

export type PartitionKind = 'gpt' | 'primary' | 'extended' | 'logical';

export interface Partition {
  number: number;
  kind: PartitionKind;
  firstLba: number;
  lastLba: number;
  sectors: number;
  startBytes: number;
  sizeBytes: number;
  /** GPT: the type GUID; MBR: the type byte as 0xNN. */
  type: string;
  typeName: string;
  /** GPT partition name. */
  name?: string;
  /** GPT unique partition GUID. */
  uuid?: string;
  /** MBR boot flag (0x80). */
  bootable?: boolean;
}

export interface GptInfo {
  /** Which header the table was read from. */
  header: 'primary' | 'backup';
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  entryCount: number;
  entrySize: number;
  /** MBR entries besides the protective one (a hybrid MBR); the GPT is what counts. */
  hybridMbr: boolean;
  /** The MBR has no 0xEE entry (or no MBR signature) but a valid GPT is there. */
  protectiveMbr: boolean;
}

export interface PartitionTable {
  scheme: 'gpt' | 'mbr' | 'none';
  diskSizeBytes: number;
  sectorSize: typeof SECTOR_SIZE;
  partitions: Partition[];
  notes: string[];
  gpt?: GptInfo;
  /** MBR disk signature (u32 at 0x1B8), 0xNNNNNNNN. */
  mbrSignature?: string;
}

/** The partitions that hold data (an MBR extended container is only a frame for logicals). */
export function dataPartitions(t: PartitionTable): Partition[] {
  return t.partitions.filter((p) => p.kind !== 'extended');
}

export function makePartition(p: Omit<Partition, 'sectors' | 'startBytes' | 'sizeBytes'>): Partition {
  const sectors = p.lastLba - p.firstLba + 1;
  return { ...p, sectors, startBytes: p.firstLba * SECTOR_SIZE, sizeBytes: sectors * SECTOR_SIZE };
}

/** Notes (one per pair) for data partitions whose sector ranges overlap. */
export function overlapNotes(parts: Partition[]): string[] {
  const sorted = [...parts].sort((a, b) => a.firstLba - b.firstLba || a.number - b.number);
  const notes: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i + 1; j < sorted.length && sorted[j]!.firstLba <= sorted[i]!.lastLba; j++) {
      const a = sorted[i]!;
      const b = sorted[j]!;
      notes.push(`partitions ${a.number} and ${b.number} overlap (sectors ${b.firstLba}–${Math.min(a.lastLba, b.lastLba)})`);
    }
  }
  return notes;
}
