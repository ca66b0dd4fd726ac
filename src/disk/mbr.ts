/**
 * MBR: the four primary entries of sector 0 and the chain of EBRs inside an extended partition
 * (DESIGN §5). Pure parsing over a ByteSource; reads one sector per EBR.
 *
 * Contract:
 * - `parseMbrSector` never throws: it says whether sector 0 carries the 0x55AA signature, whether
 *   its entries look like a partition table at all (status bytes 0x00/0x80), and lists the
 *   non-empty entries.
 * - `readMbrTable` returns the primaries (1–4) and logicals (5, 6... in chain order). An EBR's
 *   entry 1 is relative to that EBR, entry 2 (the next EBR) to the extended partition's start.
 *   A loop in the chain, an EBR outside the extended partition or past the disk's end, a missing
 *   EBR signature or a chain longer than MAX_LOGICAL_PARTITIONS ends the chain with a note;
 *   entries past the disk's end are left out with a note; overlaps are noted.
 */
import type { ByteSource } from './byte-source.js';
import { EXTENDED_MBR_TYPES, mbrTypeCode, mbrTypeName } from './guid.js';
import { makePartition, overlapNotes, SECTOR_SIZE, type Partition, type PartitionTable } from './partition.js';

export const MAX_LOGICAL_PARTITIONS = 256;

export interface MbrEntry {
  slot: number;
  status: number;
  type: number;
  firstLba: number;
  sectors: number;
}

export interface MbrSector {
  signature: boolean;
  /** Every non-empty entry has status 0x00 or 0x80. */
  plausible: boolean;
  entries: MbrEntry[];
  diskSignature: number;
}

export function parseMbrSector(sector: Buffer): MbrSector {
  const signature = sector.length >= 512 && sector[510] === 0x55 && sector[511] === 0xaa;
  const entries: MbrEntry[] = [];
  let plausible = true;
  for (let slot = 0; slot < 4; slot++) {
    const off = 0x1be + slot * 16;
    const status = sector[off]!;
    const type = sector[off + 4]!;
    const firstLba = sector.readUInt32LE(off + 8);
    const sectors = sector.readUInt32LE(off + 12);
    if (type === 0 || sectors === 0) continue;
    if (status !== 0 && status !== 0x80) plausible = false;
    entries.push({ slot: slot + 1, status, type, firstLba, sectors });
  }
  return { signature, plausible, entries, diskSignature: sector.readUInt32LE(0x1b8) };
}

export async function readMbrTable(src: ByteSource, mbr: MbrSector): Promise<PartitionTable> {
  const diskSectors = Math.floor(src.sizeBytes / SECTOR_SIZE);
  const notes: string[] = [];
  const partitions: Partition[] = [];
  let extended: Partition | undefined;
  for (const e of mbr.entries) {
    const isExtended = EXTENDED_MBR_TYPES.has(e.type);
    const lastLba = e.firstLba + e.sectors - 1;
    if (e.firstLba === 0) {
      notes.push(`MBR entry ${e.slot} starts at sector 0 (over the table itself): ignored`);
      continue;
    }
    if (lastLba >= diskSectors) {
      notes.push(`MBR entry ${e.slot} (sectors ${e.firstLba}–${lastLba}) ends past the disk's end (${diskSectors} sectors): ignored`);
      continue;
    }
    const p = makePartition({
      number: e.slot,
      kind: isExtended ? 'extended' : 'primary',
      firstLba: e.firstLba,
      lastLba,
      type: mbrTypeCode(e.type),
      typeName: mbrTypeName(e.type),
      bootable: e.status === 0x80,
    });
    if (isExtended) {
      if (extended) {
        notes.push(`MBR entry ${e.slot} is a second extended partition: its logical partitions are not read`);
      } else {
        extended = p;
      }
    }
    partitions.push(p);
  }
  if (extended) partitions.push(...(await readLogicalChain(src, extended, diskSectors, notes)));
  notes.push(...overlapNotes(partitions.filter((p) => p.kind !== 'extended')));
  return {
    scheme: 'mbr',
    diskSizeBytes: src.sizeBytes,
    sectorSize: SECTOR_SIZE,
    partitions,
    notes,
    mbrSignature: `0x${mbr.diskSignature.toString(16).padStart(8, '0')}`,
  };
}

async function readLogicalChain(src: ByteSource, ext: Partition, diskSectors: number, notes: string[]): Promise<Partition[]> {
  const out: Partition[] = [];
  const seen = new Set<number>();
  let ebrLba = ext.firstLba;
  let number = 5;
  for (let hops = 0; ; hops++) {
    if (hops >= MAX_LOGICAL_PARTITIONS) {
      notes.push(`the chain of logical partitions is longer than ${MAX_LOGICAL_PARTITIONS} EBRs: the rest is ignored`);
      break;
    }
    if (seen.has(ebrLba)) {
      notes.push(`the chain of logical partitions loops back to the EBR at sector ${ebrLba}: the rest is ignored`);
      break;
    }
    seen.add(ebrLba);
    if (ebrLba < ext.firstLba || ebrLba > ext.lastLba || ebrLba >= diskSectors) {
      notes.push(`an EBR at sector ${ebrLba} lies outside the extended partition (sectors ${ext.firstLba}–${ext.lastLba}): the chain ends there`);
      break;
    }
    const sector = await src.read(ebrLba * SECTOR_SIZE, SECTOR_SIZE);
    const ebr = parseMbrSector(sector);
    if (!ebr.signature) {
      notes.push(`the EBR at sector ${ebrLba} has no 0x55AA signature: the chain ends there`);
      break;
    }
    const raw = (slot: number) => {
      const off = 0x1be + slot * 16;
      return { type: sector[off + 4]!, status: sector[off]!, first: sector.readUInt32LE(off + 8), sectors: sector.readUInt32LE(off + 12) };
    };
    const data = raw(0);
    if (data.type !== 0 && data.sectors > 0 && !EXTENDED_MBR_TYPES.has(data.type)) {
      const firstLba = ebrLba + data.first;
      const lastLba = firstLba + data.sectors - 1;
      if (data.first === 0) {
        notes.push(`logical partition ${number} starts on its own EBR (sector ${ebrLba}): ignored`);
      } else if (lastLba >= diskSectors) {
        notes.push(`logical partition ${number} (sectors ${firstLba}–${lastLba}) ends past the disk's end (${diskSectors} sectors): ignored`);
      } else {
        if (lastLba > ext.lastLba) notes.push(`logical partition ${number} (sectors ${firstLba}–${lastLba}) ends past its extended partition (sector ${ext.lastLba})`);
        out.push(
          makePartition({ number, kind: 'logical', firstLba, lastLba, type: mbrTypeCode(data.type), typeName: mbrTypeName(data.type), bootable: data.status === 0x80 }),
        );
      }
      number++;
    }
    const next = raw(1);
    if (next.type === 0 || next.sectors === 0) break;
    if (!EXTENDED_MBR_TYPES.has(next.type)) {
      notes.push(`the EBR at sector ${ebrLba} links to a non-extended entry (type ${mbrTypeCode(next.type)}): the chain ends there`);
      break;
    }
    ebrLba = ext.firstLba + next.first;
  }
  return out;
}
