/**
 * GUIDs as GPT stores them (mixed-endian: the first three fields little-endian, the last two as
 * bytes) and the partition type names users know them by (sgdisk's names).
 */

/** The GUID at `off` in `buf`, upper-case, as sgdisk and sfdisk print it. */
export function readGuid(buf: Buffer, off: number): string {
  const hex = (start: number, end: number, reverse: boolean) => {
    const bytes = [...buf.subarray(off + start, off + end)];
    if (reverse) bytes.reverse();
    return bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  };
  return [hex(0, 4, true), hex(4, 6, true), hex(6, 8, true), hex(8, 10, false), hex(10, 16, false)].join('-').toUpperCase();
}

/** Writes `guid` (any case) at `off` in `buf`, mixed-endian (tests build tables with it). */
export function writeGuid(buf: Buffer, off: number, guid: string): void {
  const parts = guid.split('-');
  const put = (s: string, at: number, reverse: boolean) => {
    const bytes = Buffer.from(s, 'hex');
    if (reverse) bytes.reverse();
    bytes.copy(buf, off + at);
  };
  put(parts[0]!, 0, true);
  put(parts[1]!, 4, true);
  put(parts[2]!, 6, true);
  put(parts[3]!, 8, false);
  put(parts[4]!, 10, false);
}

export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

export const GPT_TYPES: Record<string, string> = {
  '0FC63DAF-8483-4772-8E79-3D69D8477DE4': 'Linux filesystem',
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': 'EFI system partition',
  '21686148-6449-6E6F-744E-656564454649': 'BIOS boot partition',
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': 'Microsoft basic data',
  'E3C9E316-0B5C-4DB8-817D-F92DF00215AE': 'Microsoft reserved',
  'DE94BBA4-06D1-4D40-A16A-BFD50179D6AC': 'Windows recovery environment',
  'E6D6D379-F507-44C2-A23C-238F2A3DF928': 'Linux LVM',
  '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F': 'Linux swap',
  'A19D880F-05FC-4D3B-A006-743F0F84911E': 'Linux RAID',
  'CA7D7CCB-63ED-4C53-861C-1742536059CC': 'Linux LUKS',
  '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709': 'Linux x86-64 root (/)',
  'BC13C2FF-59E6-4262-A352-B275FD6F7172': 'Linux extended boot',
  '933AC7E1-2EB4-4F13-B844-0E14E2AEF915': 'Linux /home',
};

export const MBR_TYPES: Record<number, string> = {
  0x01: 'FAT12',
  0x04: 'FAT16 <32M',
  0x05: 'Extended',
  0x06: 'FAT16',
  0x07: 'HPFS/NTFS/exFAT',
  0x0b: 'W95 FAT32',
  0x0c: 'W95 FAT32 (LBA)',
  0x0e: 'W95 FAT16 (LBA)',
  0x0f: 'W95 Ext\'d (LBA)',
  0x27: 'Hidden NTFS WinRE',
  0x82: 'Linux swap',
  0x83: 'Linux',
  0x85: 'Linux extended',
  0x8e: 'Linux LVM',
  0xa5: 'FreeBSD',
  0xee: 'GPT protective',
  0xef: 'EFI (FAT-12/16/32)',
  0xfd: 'Linux raid autodetect',
};

export const EXTENDED_MBR_TYPES = new Set([0x05, 0x0f, 0x85]);

export function gptTypeName(guid: string): string {
  return GPT_TYPES[guid] ?? 'unknown';
}

export function mbrTypeName(type: number): string {
  return MBR_TYPES[type] ?? 'unknown';
}

export function mbrTypeCode(type: number): string {
  return `0x${type.toString(16).padStart(2, '0')}`;
}
