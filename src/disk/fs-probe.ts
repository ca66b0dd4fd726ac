/**
 * probeFilesystem: which filesystem (or volume format) a partition or bare disk holds, from its
 * superblock (DESIGN §5), with the label, UUID, size and, where the format records it, whether a
 * journal/log needs replay. Type names are libblkid's (`blkid -o export` TYPE), UUIDs formatted
 * as blkid prints them, so the two can be compared.
 *
 * Contract:
 * - Reads the first 4 KiB; btrfs costs one more read at 64 KiB, an NTFS label one MFT record,
 *   an exFAT label one root-directory cluster (at most 64 KiB). Nothing else.
 * - Never throws for bad bytes: an implausible superblock is `unknown` (or the type with a note).
 * - needsRecovery: ext* RECOVER flag (needs_recovery), btrfs log tree present, NTFS dirty flag;
 *   null where it is not determinable from the superblock (xfs: the log itself would have to be
 *   walked), undefined for formats without a journal.
 */
import type { ByteSource } from './byte-source.js';

export type FilesystemType =
  | 'ext2'
  | 'ext3'
  | 'ext4'
  | 'xfs'
  | 'btrfs'
  | 'ntfs'
  | 'vfat'
  | 'exfat'
  | 'swap'
  | 'LVM2_member'
  | 'crypto_LUKS'
  | 'unknown';

export interface FilesystemInfo {
  type: FilesystemType;
  label?: string;
  uuid?: string;
  /** The size the filesystem says it has. */
  sizeBytes?: number;
  /** FAT12/FAT16/FAT32, LUKS1/LUKS2... */
  version?: string;
  needsRecovery?: boolean | null;
  notes: string[];
}

const HEAD = 4096;

function uuidOf(b: Buffer, off: number): string {
  const h = b.toString('hex', off, off + 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function cString(b: Buffer, off: number, len: number, enc: BufferEncoding = 'utf8'): string {
  const s = b.subarray(off, off + len);
  const nul = s.indexOf(0);
  return s.toString(enc, 0, nul === -1 ? s.length : nul);
}

function isZero(b: Buffer, off: number, len: number): boolean {
  for (let i = off; i < off + len; i++) if (b[i] !== 0) return false;
  return true;
}

function serialUuid(b: Buffer, off: number): string {
  const x = (i: number) => b[off + i]!.toString(16).padStart(2, '0').toUpperCase();
  return `${x(3)}${x(2)}-${x(1)}${x(0)}`;
}

function u64(b: Buffer, off: number, be = false): number {
  const v = be ? b.readBigUInt64BE(off) : b.readBigUInt64LE(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

function opt<T>(v: T | undefined | ''): T | undefined {
  return v === '' ? undefined : v;
}

export async function probeFilesystem(src: ByteSource): Promise<FilesystemInfo> {
  if (src.sizeBytes < 1024) return { type: 'unknown', notes: ['too small to hold a filesystem'] };
  const head = await src.read(0, HEAD);
  return (
    luks(head) ??
    lvm(head) ??
    xfs(head) ??
    ext(head) ??
    (await ntfs(src, head)) ??
    (await exfat(src, head)) ??
    vfat(head) ??
    swap(head) ??
    (await btrfs(src)) ?? { type: 'unknown', notes: [] }
  );
}

function luks(h: Buffer): FilesystemInfo | undefined {
  if (h.toString('latin1', 0, 6) !== 'LUKS\xba\xbe') return undefined;
  const version = h.readUInt16BE(6);
  return {
    type: 'crypto_LUKS',
    version: String(version),
    uuid: opt(cString(h, 168, 40, 'latin1')),
    label: version === 2 ? opt(cString(h, 24, 48)) : undefined,
    notes: [],
  };
}

function lvm(h: Buffer): FilesystemInfo | undefined {
  for (let s = 0; s < 4; s++) {
    const off = s * 512;
    if (h.toString('latin1', off, off + 8) !== 'LABELONE' || h.toString('latin1', off + 24, off + 32) !== 'LVM2 001') continue;
    const pv = off + h.readUInt32LE(off + 20);
    if (pv + 40 > h.length) return { type: 'LVM2_member', version: 'LVM2 001', notes: ['PV header out of range'] };
    const raw = h.toString('latin1', pv, pv + 32);
    const uuid = [raw.slice(0, 6), raw.slice(6, 10), raw.slice(10, 14), raw.slice(14, 18), raw.slice(18, 22), raw.slice(22, 26), raw.slice(26)].join('-');
    return { type: 'LVM2_member', version: 'LVM2 001', uuid, sizeBytes: u64(h, pv + 32) || undefined, notes: [] };
  }
  return undefined;
}

function xfs(h: Buffer): FilesystemInfo | undefined {
  if (h.toString('latin1', 0, 4) !== 'XFSB') return undefined;
  const blockSize = h.readUInt32BE(4);
  const blocks = u64(h, 8, true);
  return {
    type: 'xfs',
    uuid: uuidOf(h, 32),
    label: opt(cString(h, 108, 12)),
    sizeBytes: blockSize * blocks,
    needsRecovery: null,
    notes: [],
  };
}

const EXT_COMPAT_HAS_JOURNAL = 0x4;
const EXT_INCOMPAT_RECOVER = 0x4;
const EXT_INCOMPAT_JOURNAL_DEV = 0x8;
const EXT_INCOMPAT_64BIT = 0x80;
/** Features ext3 knows (libblkid's EXT3_FEATURE_*_SUPP); anything else means ext4. */
const EXT3_RO_COMPAT_SUPP = 0x1 | 0x2 | 0x4;
const EXT3_INCOMPAT_SUPP = 0x2 | 0x4 | 0x10;

function ext(h: Buffer): FilesystemInfo | undefined {
  const sb = 1024;
  if (h.readUInt16LE(sb + 0x38) !== 0xef53) return undefined;
  const compat = h.readUInt32LE(sb + 0x5c);
  const incompat = h.readUInt32LE(sb + 0x60);
  const roCompat = h.readUInt32LE(sb + 0x64);
  const logBlock = h.readUInt32LE(sb + 0x18);
  const notes: string[] = [];
  if (incompat & EXT_INCOMPAT_JOURNAL_DEV) notes.push('an external ext3/4 journal device, not a filesystem');
  const hasJournal = (compat & EXT_COMPAT_HAS_JOURNAL) !== 0;
  const beyondExt3 = (roCompat & ~EXT3_RO_COMPAT_SUPP) !== 0 || (incompat & ~EXT3_INCOMPAT_SUPP) !== 0;
  const type = beyondExt3 ? 'ext4' : hasJournal ? 'ext3' : 'ext2';
  let blocks = h.readUInt32LE(sb + 0x04);
  if (incompat & EXT_INCOMPAT_64BIT) blocks += h.readUInt32LE(sb + 0x150) * 2 ** 32;
  const blockSize = logBlock <= 6 ? 1024 << logBlock : 0;
  if (!blockSize) notes.push(`implausible block size (log ${logBlock})`);
  const state = h.readUInt16LE(sb + 0x3a);
  if (state & 0x2) notes.push('the filesystem records errors (needs fsck)');
  return {
    type,
    uuid: uuidOf(h, sb + 0x68),
    label: opt(cString(h, sb + 0x78, 16)),
    sizeBytes: blockSize ? blocks * blockSize : undefined,
    needsRecovery: hasJournal ? (incompat & EXT_INCOMPAT_RECOVER) !== 0 : undefined,
    notes,
  };
}

async function ntfs(src: ByteSource, h: Buffer): Promise<FilesystemInfo | undefined> {
  if (h.toString('latin1', 3, 11) !== 'NTFS    ') return undefined;
  const sectorSize = h.readUInt16LE(0x0b);
  const spcRaw = h[0x0d]!;
  const sectorsPerCluster = spcRaw > 0x80 ? 2 ** (256 - spcRaw) : spcRaw;
  const clusterSize = sectorSize * sectorsPerCluster;
  const info: FilesystemInfo = {
    type: 'ntfs',
    uuid: h.readBigUInt64LE(0x48).toString(16).toUpperCase().padStart(16, '0'),
    sizeBytes: u64(h, 0x28) * sectorSize,
    notes: [],
  };
  if (![512, 1024, 2048, 4096].includes(sectorSize) || !clusterSize) {
    info.notes.push('implausible NTFS geometry: label not read');
    return info;
  }
  const recRaw = h.readInt8(0x40);
  const recordSize = recRaw < 0 ? 2 ** -recRaw : recRaw * clusterSize;
  const mftOffset = u64(h, 0x30) * clusterSize;
  if (recordSize < 512 || recordSize > 65536 || mftOffset + 4 * recordSize > src.sizeBytes) {
    info.notes.push('MFT outside the volume: label not read');
    return info;
  }
  const rec = await src.read(mftOffset + 3 * recordSize, recordSize);
  const vol = volumeAttributes(rec, sectorSize);
  if (!vol) {
    info.notes.push('the $Volume MFT record is unreadable: label not read');
    return info;
  }
  info.label = vol.label;
  info.needsRecovery = vol.dirty;
  return info;
}

/** $Volume's VOLUME_NAME (0x60) and VOLUME_INFORMATION (0x70) from an MFT record, fixups applied. */
function volumeAttributes(rec: Buffer, sectorSize: number): { label?: string; dirty?: boolean } | undefined {
  if (rec.toString('latin1', 0, 4) !== 'FILE') return undefined;
  const usaOff = rec.readUInt16LE(4);
  const usaCount = rec.readUInt16LE(6);
  if (usaOff + usaCount * 2 > rec.length) return undefined;
  const usn = rec.readUInt16LE(usaOff);
  for (let i = 1; i < usaCount; i++) {
    const end = i * sectorSize - 2;
    if (end + 2 > rec.length) break;
    if (rec.readUInt16LE(end) !== usn) return undefined;
    rec.writeUInt16LE(rec.readUInt16LE(usaOff + i * 2), end);
  }
  const out: { label?: string; dirty?: boolean } = {};
  let off = rec.readUInt16LE(0x14);
  for (let n = 0; n < 64 && off + 24 <= rec.length; n++) {
    const type = rec.readUInt32LE(off);
    const len = rec.readUInt32LE(off + 4);
    if (type === 0xffffffff || len < 24 || off + len > rec.length) break;
    if (rec[off + 8] === 0) {
      const vlen = rec.readUInt32LE(off + 0x10);
      const voff = off + rec.readUInt16LE(off + 0x14);
      if (voff + vlen <= off + len) {
        if (type === 0x60) out.label = opt(rec.toString('utf16le', voff, voff + vlen));
        if (type === 0x70 && vlen >= 12) out.dirty = (rec.readUInt16LE(voff + 10) & 0x1) !== 0;
      }
    }
    off += len;
  }
  return out;
}

async function exfat(src: ByteSource, h: Buffer): Promise<FilesystemInfo | undefined> {
  if (h.toString('latin1', 3, 11) !== 'EXFAT   ') return undefined;
  const sectorShift = h[108]!;
  const clusterShift = h[109]!;
  const info: FilesystemInfo = { type: 'exfat', uuid: serialUuid(h, 100), notes: [] };
  if (sectorShift < 9 || sectorShift > 12 || sectorShift + clusterShift > 25) {
    info.notes.push('implausible exFAT geometry: label not read');
    return info;
  }
  const sectorSize = 2 ** sectorShift;
  info.sizeBytes = u64(h, 72) * sectorSize;
  const clusterSize = sectorSize * 2 ** clusterShift;
  const heap = h.readUInt32LE(88) * sectorSize;
  const rootCluster = h.readUInt32LE(96);
  const rootOff = heap + (rootCluster - 2) * clusterSize;
  if (rootCluster < 2 || rootOff + 32 > src.sizeBytes) {
    info.notes.push('root directory outside the volume: label not read');
    return info;
  }
  const dir = await src.read(rootOff, Math.min(clusterSize, 65536));
  for (let off = 0; off + 32 <= dir.length; off += 32) {
    const t = dir[off]!;
    if (t === 0) break;
    if (t === 0x83) {
      const chars = Math.min(dir[off + 1]!, 11);
      info.label = opt(dir.toString('utf16le', off + 2, off + 2 + chars * 2));
      break;
    }
  }
  return info;
}

function vfat(h: Buffer): FilesystemInfo | undefined {
  if (h[510] !== 0x55 || h[511] !== 0xaa || (h[0] !== 0xeb && h[0] !== 0xe9)) return undefined;
  const fat32 = h.toString('latin1', 0x52, 0x5a) === 'FAT32   ';
  const fat1x = h.toString('latin1', 0x36, 0x3e);
  if (!fat32 && fat1x !== 'FAT12   ' && fat1x !== 'FAT16   ') return undefined;
  const sectorSize = h.readUInt16LE(0x0b);
  const sectors = h.readUInt16LE(0x13) || h.readUInt32LE(0x20);
  const idOff = fat32 ? 0x43 : 0x27;
  const labelOff = fat32 ? 0x47 : 0x2b;
  const label = h.toString('latin1', labelOff, labelOff + 11).replace(/ +$/, '');
  return {
    type: 'vfat',
    version: fat32 ? 'FAT32' : fat1x.trim(),
    uuid: isZero(h, idOff, 4) ? undefined : serialUuid(h, idOff),
    label: label && label !== 'NO NAME' ? label : undefined,
    sizeBytes: sectorSize * sectors,
    notes: [],
  };
}

function swap(h: Buffer): FilesystemInfo | undefined {
  const magic = h.toString('latin1', 4086, 4096);
  if (magic !== 'SWAPSPACE2' && magic !== 'SWAP-SPACE') return undefined;
  if (magic === 'SWAP-SPACE') return { type: 'swap', version: '0', notes: [] };
  const lastPage = h.readUInt32LE(1028);
  return {
    type: 'swap',
    version: String(h.readUInt32LE(1024)),
    uuid: isZero(h, 1036, 16) ? undefined : uuidOf(h, 1036),
    label: opt(cString(h, 1052, 16)),
    sizeBytes: (lastPage + 1) * 4096,
    notes: [],
  };
}

async function btrfs(src: ByteSource): Promise<FilesystemInfo | undefined> {
  const sb = 0x10000;
  if (src.sizeBytes < sb + 4096) return undefined;
  const b = await src.read(sb, 4096);
  if (b.toString('latin1', 0x40, 0x48) !== '_BHRfS_M') return undefined;
  return {
    type: 'btrfs',
    uuid: uuidOf(b, 0x20),
    label: opt(cString(b, 0x12b, 256)),
    sizeBytes: u64(b, 0x70),
    needsRecovery: u64(b, 0x60) !== 0,
    notes: [],
  };
}
