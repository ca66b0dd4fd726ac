/**
 * openSnapshotFilesystems: a snapshot's filesystems mounted read-only for the file diff (root).
 *
 * Steps: mount the snapshot with ebsmount's own daemon (spawnDaemon: the same path as
 * `ebsmount SNAP MNT`, partition files included) in a private 0700 directory; ask the daemon which
 * files it serves (status: whole disk, SNAP-pN.img per partition); probe each file's filesystem
 * (src/disk/fs-probe.ts: reads its superblock through the mount); attach the recognised ones to
 * read-only loop devices and mount them `ro,nodev,nosuid,noexec` plus the options that keep a
 * read-only device untouched (ext4 `noload`, xfs `norecovery,nouuid`, btrfs `rescue=nologreplay`,
 * as DESIGN §4 and browse). Other filesystems are listed with the reason, never mounted.
 *
 * Interim, said plainly: one daemon per snapshot (multi-snapshot mounts with a lineage-shared cache
 * are not on main yet), and the loop + mount steps here are the few lines browse will share once it
 * lands. `close()` undoes everything in reverse order and never throws (what it could not undo is
 * returned as notes); `status()` is the daemon's counters (blocks fetched, requests).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileSource } from '../disk/byte-source.js';
import { probeFilesystem, type FilesystemInfo } from '../disk/fs-probe.js';
import { UserError } from '../errors/user-error.js';
import { controlRequest } from '../mount/control-client.js';
import type { MountStatus } from '../mount/control-protocol.js';
import { defaultLogFile } from '../mount/paths.js';
import { MountRegistry } from '../mount/registry.js';
import { collectStatus } from '../mount/run-status.js';
import { spawnDaemon } from '../mount/spawn-daemon.js';
import { runTool } from './run-tool.js';

export interface MountedFilesystem {
  /** Partition number; undefined for a disk without a partition table. */
  partition?: number;
  startBytes: number;
  filesystem: FilesystemInfo;
  /** Where it is mounted, or why not. */
  root?: string;
  skip?: string;
}

export interface SnapshotFilesystems {
  snapshotId: string;
  volumeSizeGiB: number;
  filesystems: MountedFilesystem[];
  status(): Promise<MountStatus | undefined>;
  close(): Promise<string[]>;
}

export interface OpenOptions {
  /** AWS options to pass to the mount daemon, as CLI arguments (--endpoint, --region, --profile). */
  awsArgs: string[];
  /** Partition to open (others are left alone). */
  partition?: number;
  /** Mount daemon tuning: smaller read-ahead than a sequential copy wants (metadata walks seek). */
  readAhead?: string;
  cacheSize?: string;
  registry?: MountRegistry;
}

const MOUNT_OPTIONS: Record<string, { type: string; options: string[] }> = {
  ext2: { type: 'ext4', options: ['noload'] },
  ext3: { type: 'ext4', options: ['noload'] },
  ext4: { type: 'ext4', options: ['noload'] },
  xfs: { type: 'xfs', options: ['norecovery', 'nouuid'] },
  btrfs: { type: 'btrfs', options: ['rescue=nologreplay'] },
};
const SAFE = ['ro', 'nodev', 'nosuid', 'noexec'];

export async function openSnapshotFilesystems(snapshotId: string, label: string, o: OpenOptions): Promise<SnapshotFilesystems> {
  const registry = o.registry ?? new MountRegistry();
  const base = await mkdtemp(join(tmpdir(), `ebsmount-diff-${label}-`));
  const fuseDir = join(base, 'fuse');
  await mkdir(fuseDir, { mode: 0o700 });
  const undo: { what: string; fn: () => Promise<void> }[] = [{ what: `remove ${base}`, fn: () => rm(base, { recursive: true, force: true }) }];
  const close = async (): Promise<string[]> => {
    const failed: string[] = [];
    while (undo.length) {
      const u = undo.pop()!;
      try {
        await u.fn();
      } catch (err) {
        failed.push(`could not ${u.what}: ${(err as Error).message}`);
      }
    }
    return failed;
  };
  try {
    const logFile = defaultLogFile(snapshotId);
    const ready = await spawnDaemon({
      args: ['mount', snapshotId, fuseDir, ...o.awsArgs, '--read-ahead', o.readAhead ?? '1M', '--cache-size', o.cacheSize ?? '256M', '--log-file', logFile, '--daemon-fd', '3'],
      logFile,
    });
    if (!ready.ok) throw new UserError(ready.message, ready.exitCode || 1);
    undo.push({ what: `unmount ${fuseDir}`, fn: () => stopDaemon(registry, fuseDir) });
    const status = async () => (await collectStatus(registry, fuseDir))[0];
    const st = await status();
    if (!st) throw new UserError(`the mount of ${snapshotId} at ${fuseDir} does not answer`);
    const files = st.files ?? [{ name: `${snapshotId}.img`, offsetBytes: 0, sizeBytes: st.sizeBytes, writable: false }];
    const candidates = files.some((f) => f.partition !== undefined) ? files.filter((f) => f.partition !== undefined) : files.slice(0, 1);
    const filesystems: MountedFilesystem[] = [];
    for (const f of candidates) {
      if (o.partition !== undefined && f.partition !== o.partition) continue;
      const path = join(fuseDir, f.name);
      const src = await openFileSource(path);
      let fs: FilesystemInfo;
      try {
        fs = await probeFilesystem(src);
      } finally {
        await src.close();
      }
      const entry: MountedFilesystem = { partition: f.partition, startBytes: f.offsetBytes, filesystem: fs };
      filesystems.push(entry);
      const how = MOUNT_OPTIONS[fs.type];
      if (!how) {
        entry.skip = fs.type === 'unknown' ? 'no filesystem recognised' : `${fs.type}: not compared (ext2/3/4, xfs and btrfs are)`;
        continue;
      }
      const dev = await loopAttach(path);
      undo.push({ what: `detach ${dev}`, fn: () => loopDetach(dev) });
      const dir = join(base, f.partition === undefined ? 'disk' : `p${f.partition}`);
      await mkdir(dir, { mode: 0o700 });
      const m = await runTool('mount', ['-t', how.type, '-o', [...SAFE, ...how.options].join(','), dev, dir]);
      if (m.code !== 0) {
        entry.skip = `mount failed: ${m.stderr.trim().split('\n')[0] ?? `exit ${m.code}`}`;
        continue;
      }
      undo.push({ what: `unmount ${dir}`, fn: () => umount(dir) });
      entry.root = dir;
    }
    return { snapshotId, volumeSizeGiB: st.volumeSizeGiB, filesystems, status, close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function loopAttach(file: string): Promise<string> {
  const r = await runTool('losetup', ['-r', '-f', '--show', file]);
  if (r.code !== 0) throw new UserError(`losetup ${file}: ${r.stderr.trim().split('\n')[0]}`);
  return r.stdout.trim();
}

async function loopDetach(dev: string): Promise<void> {
  const r = await runTool('losetup', ['-d', dev]);
  if (r.code !== 0) throw new Error(r.stderr.trim());
}

async function umount(dir: string): Promise<void> {
  const r = await runTool('umount', [dir]);
  if (r.code !== 0) {
    const lazy = await runTool('umount', ['-l', dir]);
    if (lazy.code !== 0) throw new Error(r.stderr.trim());
  }
}

async function stopDaemon(registry: MountRegistry, fuseDir: string): Promise<void> {
  const entry = await registry.findByMountpoint(fuseDir);
  if (entry?.alive) {
    const final = await controlRequest(entry.socket, { op: 'unmount' });
    if (!final.ok) throw new Error(final.error);
    const until = Date.now() + 15_000;
    while (Date.now() < until) {
      try {
        process.kill(entry.pid, 0);
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return;
  }
  await umount(fuseDir);
}
