/**
 * planBrowse: what `ebsmount browse` will do with each partition (or the bare disk) — pure, from
 * the DiskReport and what this machine supports. Forensic-safe options (DESIGN §4):
 *
 * | filesystem  | how                              | options (read-only browse)                     |
 * |-------------|----------------------------------|------------------------------------------------|
 * | ext2/3/4    | kernel ext4                      | ro,nodev,nosuid,noexec,noload                  |
 * | xfs         | kernel xfs                       | ro,nodev,nosuid,noexec,norecovery,nouuid       |
 * | btrfs       | kernel btrfs                     | ro,nodev,nosuid,noexec,rescue=nologreplay      |
 * | ntfs        | ntfs-3g (FUSE)                   | ro,nodev,nosuid,noexec                         |
 * | vfat, exfat | kernel vfat / exfat, if present  | ro,nodev,nosuid,noexec                         |
 *
 * With `replay` the loop device is writable (over the scratch overlay of a writable, discarded
 * mount) and the journal/log options are left out (no noload / norecovery / nologreplay), so the
 * kernel replays into scratch; the filesystem is still mounted `ro`.
 * Swap, LVM2 PVs, LUKS, unknown data and filesystems this kernel has no driver for are listed
 * with the reason and never mounted. A bare disk is mounted at DIR itself; partition N at DIR/pN.
 */
import type { DiskReport } from '../disk/inspect-disk.js';
import type { FilesystemInfo } from '../disk/fs-probe.js';

export const SAFE_OPTIONS = ['ro', 'nodev', 'nosuid', 'noexec'];

export interface BrowseTarget {
  /** 'disk' for a bare disk, else pN. */
  label: string;
  partition?: number;
  /** File name in the FUSE mount (SNAP.img or SNAP-pN.img). */
  fileName: string;
  /** Relative to DIR: '' (bare disk) or 'pN'. */
  subdir: string;
  filesystem: FilesystemInfo;
  sizeBytes: number;
  /** How to mount it, or why not. */
  mount?: { helper: 'kernel' | 'ntfs-3g'; type: string; options: string[] };
  skip?: string;
}

export interface Machine {
  /** Filesystem types the kernel supports (/proc/filesystems). */
  kernelFilesystems: Set<string>;
  /** ntfs-3g is installed. */
  ntfs3g: boolean;
}

const KERNEL_TYPE: Record<string, string> = { ext2: 'ext4', ext3: 'ext4', ext4: 'ext4', xfs: 'xfs', btrfs: 'btrfs', vfat: 'vfat', exfat: 'exfat' };

function noRecoveryOptions(type: string): string[] {
  if (type === 'ext4') return ['noload'];
  if (type === 'xfs') return ['norecovery', 'nouuid'];
  if (type === 'btrfs') return ['rescue=nologreplay'];
  return [];
}

export function mountChoice(fs: FilesystemInfo, m: Machine, replay: boolean): Pick<BrowseTarget, 'mount' | 'skip'> {
  switch (fs.type) {
    case 'swap':
      return { skip: 'swap space: nothing to mount' };
    case 'LVM2_member':
      return { skip: 'LVM2 physical volume: not mounted (activate its volume group by hand from the partition file)' };
    case 'crypto_LUKS':
      return { skip: 'LUKS encrypted: not mounted (open it by hand with cryptsetup on the partition file)' };
    case 'unknown':
      return { skip: 'no filesystem recognised' };
    case 'ntfs':
      if (!m.ntfs3g) return { skip: 'NTFS needs ntfs-3g, which is not installed (apt-get install ntfs-3g)' };
      return { mount: { helper: 'ntfs-3g', type: 'ntfs', options: [...SAFE_OPTIONS] } };
  }
  const type = KERNEL_TYPE[fs.type];
  if (!type) return { skip: `${fs.type}: not supported` };
  if (!m.kernelFilesystems.has(type)) return { skip: `this kernel has no ${type} driver (not in /proc/filesystems)` };
  const safe = type === 'xfs' ? [...SAFE_OPTIONS, 'nouuid'] : [...SAFE_OPTIONS];
  return { mount: { helper: 'kernel', type, options: replay ? safe : [...SAFE_OPTIONS, ...noRecoveryOptions(type)] } };
}

export function planBrowse(snapshotId: string, report: DiskReport, m: Machine, opts: { replay: boolean; partition?: number }): BrowseTarget[] {
  if (report.bare) {
    return [{ label: 'disk', fileName: `${snapshotId}.img`, subdir: '', filesystem: report.bare, sizeBytes: report.table.diskSizeBytes, ...mountChoice(report.bare, m, opts.replay) }];
  }
  return report.partitions
    .filter((p) => opts.partition === undefined || p.partition.number === opts.partition)
    .map(({ partition: p, filesystem }) => ({
      label: `p${p.number}`,
      partition: p.number,
      fileName: `${snapshotId}-p${p.number}.img`,
      subdir: `p${p.number}`,
      filesystem,
      sizeBytes: p.sizeBytes,
      ...mountChoice(filesystem, m, opts.replay),
    }));
}
