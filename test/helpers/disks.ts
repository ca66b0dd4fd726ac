/**
 * Partitioned test disks made by the real tools, and what the real tools say about them.
 *
 * Contract:
 * - `makeGptDisk(path, parts)`: a sparse image, 1 MiB-aligned partitions in the order given
 *   (first at 1 MiB), created with sgdisk (type code and name per part), each filled by its
 *   `make(file)` in a temporary file of exactly the partition's size, copied in with dd
 *   (conv=notrunc,sparse). Returns the partitions' byte offsets and sizes (number = index + 1).
 * - `fillPartition(image, start, size, make)`: the same for one range of any image.
 * - `makeNtfsImage(path, sizeMiB, srcDir)`: mkntfs, then ntfs-3g read-write + cp -a, always
 *   unmounted. `makeVfatImage(path, sizeMiB, label)`: mkfs.vfat (nothing inside: populating
 *   needs a kernel vfat driver this machine may lack).
 * - `sfdiskJson(image)`, `blkidAt(image, offset, size)` (blkid -p -o export at an offset).
 */
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeFsImage, run, type FsType } from './images.js';

const MiB = 1024 * 1024;

export interface DiskPart {
  sizeMiB: number;
  /** sgdisk type code (8300, 0700, ef00, 8200...). */
  code?: string;
  name?: string;
  make?: (file: string) => Promise<unknown>;
}

export interface PlacedPart {
  number: number;
  start: number;
  size: number;
}

export async function fillPartition(image: string, start: number, size: number, make: (file: string) => Promise<unknown>): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'ebsmount-part-'));
  const part = join(tmp, 'part.img');
  try {
    await run('truncate', ['-s', String(size), part]);
    await make(part);
    await run('dd', [`if=${part}`, `of=${image}`, 'bs=1M', `seek=${start / MiB}`, 'conv=notrunc,sparse', 'status=none']);
  } finally {
    await run('rm', ['-rf', tmp]);
  }
}

export async function makeGptDisk(path: string, parts: DiskPart[]): Promise<PlacedPart[]> {
  const totalMiB = 2 + parts.reduce((a, p) => a + p.sizeMiB, 0);
  await run('truncate', ['-s', `${totalMiB}M`, path]);
  const args = ['-o'];
  const placed: PlacedPart[] = [];
  let start = MiB;
  parts.forEach((p, i) => {
    const n = i + 1;
    placed.push({ number: n, start, size: p.sizeMiB * MiB });
    args.push('-n', `${n}:${start / 512}:${(start + p.sizeMiB * MiB) / 512 - 1}`, '-t', `${n}:${p.code ?? '8300'}`, '-c', `${n}:${p.name ?? `part${n}`}`);
    start += p.sizeMiB * MiB;
  });
  await run('sgdisk', [...args, path]);
  for (const [i, p] of parts.entries()) if (p.make) await fillPartition(path, placed[i]!.start, placed[i]!.size, p.make);
  return placed;
}

/** A partition maker for ext4 / xfs / btrfs holding a copy of srcDir (images.ts makers). */
export function treeFs(fs: FsType | 'ntfs', sizeMiB: number, srcDir: string): (file: string) => Promise<void> {
  return (file) => (fs === 'ntfs' ? makeNtfsImage(file, sizeMiB, srcDir) : makeFsImage(fs, file, sizeMiB, srcDir));
}

export async function makeNtfsImage(path: string, sizeMiB: number, srcDir: string, label = 'Windows'): Promise<void> {
  await run('truncate', ['-s', `${sizeMiB}M`, path]);
  await run('mkntfs', ['-q', '-F', '-Q', '-L', label, path]);
  const mnt = await mkdtemp(join(tmpdir(), 'ebsmount-ntfs-'));
  let mounted = false;
  try {
    await run('ntfs-3g', ['-o', 'rw', path, mnt]);
    mounted = true;
    await run('cp', ['-a', '--sparse=always', `${srcDir}/.`, `${mnt}/`]);
  } finally {
    if (mounted) await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
    await rmdir(mnt).catch(() => undefined);
  }
}

export async function makeVfatImage(path: string, label = 'EFI'): Promise<void> {
  await run('mkfs.vfat', ['-n', label, path]);
}

export interface SfdiskPart {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
}

export async function sfdiskJson(image: string): Promise<{ label: string; id: string; partitions: SfdiskPart[] }> {
  const r = await run('sfdisk', ['--json', image]);
  return (JSON.parse(r.stdout) as { partitiontable: { label: string; id: string; partitions: SfdiskPart[] } }).partitiontable;
}

export async function blkidAt(image: string, offset: number, size: number): Promise<Record<string, string>> {
  const r = await run('blkid', ['-p', '-o', 'export', '-O', String(offset), '-S', String(size), image]).catch(() => ({ stdout: '' }));
  return Object.fromEntries(r.stdout.trim().split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}
