/**
 * GPT: header at LBA 1 (backup at the disk's last LBA), entry array wherever the header says
 * (DESIGN §5). Both CRC32s are checked (header over its own size with the CRC field zeroed, and
 * the entry array); a damaged primary falls back to the backup, with a note saying so.
 *
 * Contract:
 * - `readGptHeader(src, lba)` resolves to a header or to the reason it is unusable (no
 *   signature, bad size, bad CRC, wrong own-LBA, absurd entry count or size, entry array outside
 *   the disk, entry array CRC). Never throws for bad bytes; reads the header sector and the
 *   entry array only.
 * - `readGptTable(src)` tries the primary, then (unless `tryBackup: false`) the backup: at the LBA
 *   the primary names when readable, at the disk's last sector, and at `backupHints` (the end of
 *   the protective MBR entry: where the disk ended for the tool that wrote the table — an image
 *   imported into a larger volume keeps its backup GPT there). Unused entries (zero type GUID) are skipped; an entry
 *   whose last LBA precedes its first, or that ends past the disk's end, is left out with a note;
 *   one outside the usable range is kept with a note; overlaps are noted. Null when neither
 *   header is usable (the reasons are in `notes`).
 * - Limits: at most MAX_GPT_ENTRIES entries of 128–4096 bytes (a multiple of 8), so a hostile
 *   header cannot make us read or loop over gigabytes.
 */
import { crc32 } from 'node:zlib';
import type { ByteSource } from './byte-source.js';
import { gptTypeName, readGuid, ZERO_GUID } from './guid.js';
import { makePartition, overlapNotes, SECTOR_SIZE, type GptInfo, type Partition } from './partition.js';

export const MAX_GPT_ENTRIES = 16_384;
export const GPT_SIGNATURE = 'EFI PART';

export interface GptHeader {
  lba: number;
  headerSize: number;
  backupLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entries: Buffer;
}

export type HeaderResult = { ok: true; header: GptHeader } | { ok: false; problem: string; backupLba?: number };

function u64(buf: Buffer, off: number): number {
  const v = buf.readBigUInt64LE(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

export async function readGptHeader(src: ByteSource, lba: number): Promise<HeaderResult> {
  const diskSectors = Math.floor(src.sizeBytes / SECTOR_SIZE);
  if (lba < 1 || lba >= diskSectors) return { ok: false, problem: `LBA ${lba} is outside the disk` };
  const sector = await src.read(lba * SECTOR_SIZE, SECTOR_SIZE);
  if (sector.toString('latin1', 0, 8) !== GPT_SIGNATURE) return { ok: false, problem: 'no "EFI PART" signature' };
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < 92 || headerSize > SECTOR_SIZE) return { ok: false, problem: `header size ${headerSize} is not 92–512` };
  const copy = Buffer.from(sector.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  const backupLba = u64(sector, 32);
  if (crc32(copy) !== sector.readUInt32LE(16)) return { ok: false, problem: 'header CRC32 mismatch', backupLba };
  const myLba = u64(sector, 24);
  if (myLba !== lba) return { ok: false, problem: `header says it is at LBA ${myLba}`, backupLba };
  const entryCount = sector.readUInt32LE(80);
  const entrySize = sector.readUInt32LE(84);
  if (entrySize < 128 || entrySize > 4096 || entrySize % 8 !== 0) return { ok: false, problem: `entry size ${entrySize} is not 128–4096 bytes (a multiple of 8)`, backupLba };
  if (entryCount > MAX_GPT_ENTRIES) return { ok: false, problem: `entry count ${entryCount} is absurd (more than ${MAX_GPT_ENTRIES})`, backupLba };
  const entriesLba = u64(sector, 72);
  const entryBytes = entryCount * entrySize;
  const entrySectors = Math.ceil(entryBytes / SECTOR_SIZE);
  if (entriesLba < 1 || entriesLba + entrySectors > diskSectors) return { ok: false, problem: `entry array (LBA ${entriesLba}, ${entrySectors} sectors) is outside the disk`, backupLba };
  const entries = await src.read(entriesLba * SECTOR_SIZE, entryBytes);
  if (crc32(entries) !== sector.readUInt32LE(88)) return { ok: false, problem: 'entry array CRC32 mismatch', backupLba };
  return {
    ok: true,
    header: {
      lba,
      headerSize,
      backupLba,
      firstUsableLba: u64(sector, 40),
      lastUsableLba: u64(sector, 48),
      diskGuid: readGuid(sector, 56),
      entriesLba,
      entryCount,
      entrySize,
      entries,
    },
  };
}

export interface GptTable {
  info: Omit<GptInfo, 'hybridMbr' | 'protectiveMbr'>;
  partitions: Partition[];
}

export async function readGptTable(src: ByteSource, notes: string[], opts: { tryBackup?: boolean; backupHints?: number[] } = {}): Promise<GptTable | null> {
  const diskSectors = Math.floor(src.sizeBytes / SECTOR_SIZE);
  const lastLba = diskSectors - 1;
  const primary = await readGptHeader(src, 1);
  let header: GptHeader;
  let which: 'primary' | 'backup' = 'primary';
  if (primary.ok) {
    header = primary.header;
  } else if (opts.tryBackup === false) {
    notes.push(`no usable GPT: primary header at LBA 1: ${primary.problem}`);
    return null;
  } else {
    const candidates = [...new Set([primary.backupLba, lastLba, ...(opts.backupHints ?? [])].filter((x): x is number => x !== undefined && x > 1 && x < diskSectors))];
    let found: GptHeader | undefined;
    const problems: string[] = [];
    for (const lba of candidates) {
      const r = await readGptHeader(src, lba);
      if (r.ok) {
        found = r.header;
        break;
      }
      problems.push(`backup at LBA ${lba}: ${r.problem}`);
    }
    if (!found) {
      notes.push(`no usable GPT: primary header at LBA 1: ${primary.problem}; ${problems.join('; ') || 'no backup location'}`);
      return null;
    }
    notes.push(`primary GPT header at LBA 1 is damaged (${primary.problem}): using the backup GPT at LBA ${found.lba}`);
    header = found;
    which = 'backup';
  }
  const partitions: Partition[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const off = i * header.entrySize;
    const type = readGuid(header.entries, off);
    if (type === ZERO_GUID) continue;
    const number = i + 1;
    const first = u64(header.entries, off + 32);
    const last = u64(header.entries, off + 40);
    if (last < first) {
      notes.push(`GPT entry ${number}: last LBA ${last} is before first LBA ${first}: ignored`);
      continue;
    }
    if (last >= diskSectors) {
      notes.push(`GPT entry ${number} (sectors ${first}–${last}) ends past the disk's end (${diskSectors} sectors): ignored`);
      continue;
    }
    if (first < header.firstUsableLba || last > header.lastUsableLba) {
      notes.push(`GPT entry ${number} (sectors ${first}–${last}) lies outside the usable range ${header.firstUsableLba}–${header.lastUsableLba}`);
    }
    const name = header.entries.toString('utf16le', off + 56, off + 128).replace(/\0.*$/s, '');
    partitions.push(
      makePartition({
        number,
        kind: 'gpt',
        firstLba: first,
        lastLba: last,
        type,
        typeName: gptTypeName(type),
        name,
        uuid: readGuid(header.entries, off + 16),
      }),
    );
  }
  notes.push(...overlapNotes(partitions));
  return {
    info: {
      header: which,
      diskGuid: header.diskGuid,
      firstUsableLba: header.firstUsableLba,
      lastUsableLba: header.lastUsableLba,
      entryCount: header.entryCount,
      entrySize: header.entrySize,
    },
    partitions,
  };
}
