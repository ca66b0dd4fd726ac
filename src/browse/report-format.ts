/**
 * How a DiskReport is shown: `diskReportJson` (the `--json` shape of inspect, and the partition
 * part of browse's record) and `formatDiskReport` (the table inspect prints). Pure functions.
 */
import type { DiskReport } from '../disk/inspect-disk.js';
import type { FilesystemInfo } from '../disk/fs-probe.js';
import type { Partition } from '../disk/partition.js';
import { formatBytes } from '../util/format.js';

export interface PartitionJson {
  number: number;
  kind: Partition['kind'];
  startSector: number;
  endSector: number;
  sectors: number;
  startBytes: number;
  sizeBytes: number;
  type: string;
  typeName: string;
  name?: string;
  uuid?: string;
  bootable?: boolean;
  filesystem?: FilesystemInfo;
}

export interface DiskReportJson {
  scheme: 'gpt' | 'mbr' | 'none';
  sizeBytes: number;
  sectorSize: number;
  diskGuid?: string;
  gptHeader?: 'primary' | 'backup';
  hybridMbr?: boolean;
  mbrSignature?: string;
  notes: string[];
  partitions: PartitionJson[];
  /** The filesystem of the whole disk, when there is no table. */
  filesystem?: FilesystemInfo;
}

export function diskReportJson(r: DiskReport): DiskReportJson {
  const fsOf = new Map(r.partitions.map((p) => [p.partition.number, p.filesystem]));
  return {
    scheme: r.table.scheme,
    sizeBytes: r.table.diskSizeBytes,
    sectorSize: r.table.sectorSize,
    diskGuid: r.table.gpt?.diskGuid,
    gptHeader: r.table.gpt?.header,
    hybridMbr: r.table.gpt?.hybridMbr,
    mbrSignature: r.table.mbrSignature,
    notes: r.table.notes,
    partitions: r.table.partitions.map((p) => ({
      number: p.number,
      kind: p.kind,
      startSector: p.firstLba,
      endSector: p.lastLba,
      sectors: p.sectors,
      startBytes: p.startBytes,
      sizeBytes: p.sizeBytes,
      type: p.type,
      typeName: p.typeName,
      name: p.name,
      uuid: p.uuid,
      bootable: p.bootable,
      filesystem: fsOf.get(p.number),
    })),
    filesystem: r.bare,
  };
}

export function recoveryWord(fs: FilesystemInfo): string {
  if (fs.needsRecovery === true) return fs.type === 'ntfs' ? 'dirty' : 'needs recovery';
  if (fs.needsRecovery === null) return 'log state unknown';
  return '';
}

/** Aligned columns; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

export function describeScheme(r: DiskReport): string {
  const t = r.table;
  if (t.scheme === 'gpt') return `GPT (disk ${t.gpt!.diskGuid}${t.gpt!.header === 'backup' ? ', read from the backup header' : ''}${t.gpt!.hybridMbr ? ', hybrid MBR' : ''})`;
  if (t.scheme === 'mbr') return `MBR (signature ${t.mbrSignature})`;
  return t.notes.length ? 'no usable partition table' : 'no partition table';
}

export function formatDiskReport(name: string, r: DiskReport): string {
  const lines = [`${name}: ${formatBytes(r.table.diskSizeBytes)}, ${describeScheme(r)}`];
  const fsCells = (fs: FilesystemInfo | undefined) =>
    fs ? [fs.type + (fs.version && fs.type === 'vfat' ? ` (${fs.version})` : ''), fs.label ?? '', fs.uuid ?? '', recoveryWord(fs)] : ['', '', '', ''];
  if (r.bare) {
    lines.push(table([['filesystem', 'label', 'uuid', 'size', 'state'], [...fsCells(r.bare).slice(0, 3), r.bare.sizeBytes ? formatBytes(r.bare.sizeBytes) : '', fsCells(r.bare)[3]!]]));
  } else if (r.table.partitions.length) {
    const fsOf = new Map(r.partitions.map((p) => [p.partition.number, p.filesystem]));
    const rows = [['part', 'start', 'end', 'size', 'type', 'name', 'filesystem', 'label', 'uuid', 'state']];
    for (const p of r.table.partitions) {
      rows.push([`p${p.number}`, String(p.firstLba), String(p.lastLba), formatBytes(p.sizeBytes), p.kind === 'gpt' ? p.typeName : `${p.type} ${p.typeName}`, p.name ?? (p.kind === 'gpt' ? '' : p.kind), ...fsCells(fsOf.get(p.number))]);
    }
    lines.push(table(rows));
  }
  for (const n of r.table.notes) lines.push(`note: ${n}`);
  for (const p of r.partitions) for (const n of p.filesystem.notes) lines.push(`note: p${p.partition.number}: ${n}`);
  for (const n of r.bare?.notes ?? []) lines.push(`note: ${n}`);
  return lines.join('\n');
}
