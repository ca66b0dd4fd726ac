/**
 * readPartitionTable: which table a disk has and what it lists, reading only the sectors that
 * hold tables (sector 0, the GPT header and entry array — or the backup at the disk's end — and
 * one sector per EBR).
 *
 * Decision, as Linux and libblkid make it:
 * - Sector 0 that is a filesystem's boot sector (NTFS, exFAT, FAT: a bare filesystem carries
 *   0x55AA too) → no table.
 * - An MBR with a 0xEE entry → GPT (protective MBR; other entries beside it = hybrid MBR, noted;
 *   the GPT wins). Neither GPT header usable → no partitions, with the reasons in notes.
 * - An MBR without 0xEE whose entries look sane → MBR (primaries, extended, logicals).
 * - No MBR signature (or no entries) but a valid primary GPT header → GPT, noted (the backup is
 *   not looked for here: a bare filesystem would cost a fetch at the disk's end for nothing).
 * - Anything else → scheme 'none' (a bare filesystem, or an empty disk).
 * Never throws for bad bytes: every anomaly is a note (see partition.ts).
 */
import type { ByteSource } from './byte-source.js';
import { readGptTable } from './gpt.js';
import { parseMbrSector, readMbrTable } from './mbr.js';
import { SECTOR_SIZE, type PartitionTable } from './partition.js';

/** True when sector 0 is the boot sector of a filesystem that also ends in 0x55AA. */
export function isFilesystemBootSector(sector: Buffer): boolean {
  const at = (off: number, s: string) => sector.toString('latin1', off, off + s.length) === s;
  return at(3, 'NTFS    ') || at(3, 'EXFAT   ') || at(0x36, 'FAT12   ') || at(0x36, 'FAT16   ') || at(0x52, 'FAT32   ');
}

export async function readPartitionTable(src: ByteSource): Promise<PartitionTable> {
  const notes: string[] = [];
  const empty = (): PartitionTable => ({ scheme: 'none', diskSizeBytes: src.sizeBytes, sectorSize: SECTOR_SIZE, partitions: [], notes });
  if (src.sizeBytes < 2 * SECTOR_SIZE) return empty();
  const sector0 = await src.read(0, SECTOR_SIZE);
  if (isFilesystemBootSector(sector0)) return empty();
  const mbr = parseMbrSector(sector0);
  const protective = mbr.signature && mbr.entries.some((e) => e.type === 0xee);

  if (protective) {
    const hints = mbr.entries.filter((e) => e.type === 0xee && e.sectors > 0).map((e) => e.firstLba + e.sectors - 1);
    const gpt = await readGptTable(src, notes, { backupHints: hints });
    if (!gpt) return empty();
    const others = mbr.entries.filter((e) => e.type !== 0xee);
    if (others.length) notes.push(`hybrid MBR: ${others.length} MBR entr${others.length === 1 ? 'y' : 'ies'} besides the protective one; the GPT is used`);
    return { scheme: 'gpt', diskSizeBytes: src.sizeBytes, sectorSize: SECTOR_SIZE, partitions: gpt.partitions, notes, gpt: { ...gpt.info, hybridMbr: others.length > 0, protectiveMbr: true } };
  }
  if (mbr.signature && mbr.plausible && mbr.entries.length > 0) return readMbrTable(src, mbr);

  // No (usable) MBR: a GPT may still be there (a damaged or missing protective MBR).
  const gptNotes: string[] = [];
  const gpt = await readGptTable(src, gptNotes, { tryBackup: false });
  if (gpt) {
    notes.push('no protective MBR in sector 0, but a valid GPT: using the GPT', ...gptNotes);
    return { scheme: 'gpt', diskSizeBytes: src.sizeBytes, sectorSize: SECTOR_SIZE, partitions: gpt.partitions, notes, gpt: { ...gpt.info, hybridMbr: false, protectiveMbr: false } };
  }
  if (mbr.signature && !mbr.plausible) notes.push('sector 0 has an MBR signature but its entries are not a partition table (bad status bytes): treated as no table');
  return empty();
}
