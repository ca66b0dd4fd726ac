/**
 * Builders of synthetic disks in memory for the partition-table tests: an MBR sector, EBRs,
 * a GPT (header + entry array with correct CRC32s, primary and backup) — and ways to damage them.
 */
import { crc32 } from 'node:zlib';
import { writeGuid } from '../../../src/disk/guid.js';

export const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
export const EFI = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
export const BIOS = '21686148-6449-6E6F-744E-656564454649';

export interface MbrEntrySpec {
  slot: number;
  type: number;
  first: number;
  sectors: number;
  status?: number;
}

export function writeMbrEntries(disk: Buffer, sectorLba: number, entries: MbrEntrySpec[]): void {
  const base = sectorLba * 512;
  for (const e of entries) {
    const off = base + 0x1be + (e.slot - 1) * 16;
    disk[off] = e.status ?? 0;
    disk[off + 4] = e.type;
    disk.writeUInt32LE(e.first, off + 8);
    disk.writeUInt32LE(e.sectors, off + 12);
  }
  disk[base + 510] = 0x55;
  disk[base + 511] = 0xaa;
}

export interface GptEntrySpec {
  index: number; // 0-based slot
  type: string;
  first: number;
  last: number;
  name?: string;
  uuid?: string;
}

export interface GptSpec {
  entries: GptEntrySpec[];
  entryCount?: number;
  entrySize?: number;
  protective?: boolean;
}

/** Writes protective MBR, primary GPT at LBA 1 (entries at 2) and backup GPT at the last LBA. */
export function writeGpt(disk: Buffer, spec: GptSpec): void {
  const sectors = disk.length / 512;
  const count = spec.entryCount ?? 128;
  const size = spec.entrySize ?? 128;
  const entryBytes = count * size;
  const entrySectors = Math.ceil(entryBytes / 512);
  const entries = Buffer.alloc(entryBytes);
  for (const e of spec.entries) {
    const off = e.index * size;
    writeGuid(entries, off, e.type);
    writeGuid(entries, off + 16, e.uuid ?? `00000000-0000-0000-0000-${String(e.index + 1).padStart(12, '0')}`);
    entries.writeBigUInt64LE(BigInt(e.first), off + 32);
    entries.writeBigUInt64LE(BigInt(e.last), off + 40);
    if (e.name) entries.write(e.name, off + 56, 'utf16le');
  }
  if (spec.protective !== false) writeMbrEntries(disk, 0, [{ slot: 1, type: 0xee, first: 1, sectors: Math.min(sectors - 1, 0xffffffff) }]);
  const lastLba = sectors - 1;
  const header = (myLba: number, altLba: number, entriesLba: number) => {
    const h = Buffer.alloc(512);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(myLba), 24);
    h.writeBigUInt64LE(BigInt(altLba), 32);
    h.writeBigUInt64LE(BigInt(2 + entrySectors), 40);
    h.writeBigUInt64LE(BigInt(lastLba - 1 - entrySectors), 48);
    writeGuid(h, 56, '11111111-2222-3333-4444-555555555555');
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(count, 80);
    h.writeUInt32LE(size, 84);
    h.writeUInt32LE(crc32(entries), 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };
  header(1, lastLba, 2).copy(disk, 512);
  entries.copy(disk, 2 * 512);
  const backupEntriesLba = lastLba - entrySectors;
  entries.copy(disk, backupEntriesLba * 512);
  header(lastLba, 1, backupEntriesLba).copy(disk, lastLba * 512);
}

/** Recomputes the primary header's CRC after a test changed a field. */
export function resealHeader(disk: Buffer, lba = 1): void {
  const h = disk.subarray(lba * 512, lba * 512 + 92);
  h.writeUInt32LE(0, 16);
  h.writeUInt32LE(crc32(h), 16);
}

/** An ext4-like superblock at `offset` (magic, features, UUID, label). */
export function writeExtSuperblock(
  disk: Buffer,
  offset: number,
  opts: { label?: string; uuid?: string; blocks?: number; logBlockSize?: number; compat?: number; incompat?: number; roCompat?: number } = {},
): void {
  const sb = offset + 1024;
  disk.writeUInt32LE(opts.blocks ?? 1024, sb + 0x04);
  disk.writeUInt32LE(opts.logBlockSize ?? 2, sb + 0x18);
  disk.writeUInt16LE(0xef53, sb + 0x38);
  disk.writeUInt16LE(1, sb + 0x3a);
  disk.writeUInt32LE(opts.compat ?? 0x4, sb + 0x5c);
  disk.writeUInt32LE(opts.incompat ?? 0x2c2, sb + 0x60);
  disk.writeUInt32LE(opts.roCompat ?? 0x46b, sb + 0x64);
  Buffer.from((opts.uuid ?? '0123456789abcdef0123456789abcdef').replace(/-/g, ''), 'hex').copy(disk, sb + 0x68);
  disk.write(opts.label ?? '', sb + 0x78, 'utf8');
}
