/**
 * openSnapshotFilesystems: a snapshot's filesystems mounted read-only for the file diff (root).
 *
 * Steps: mount the snapshot with ebsmount's own daemon (spawnDaemon: the same path as
 * `ebsmount SNAP MNT`, partition files included) in a private 0700 directory; read its partition
 * table and superblocks through the whole-disk file (src/disk inspectDisk); plan and mount exactly
 * as `ebsmount browse` does (browse's mount-plan.ts and system.ts: a read-only loop device on each
 * partition's own file, `ro,nodev,nosuid,noexec` plus ext4 `noload`, xfs `norecovery,nouuid`,
 * btrfs `rescue=nologreplay`, NTFS through ntfs-3g). What cannot be mounted is listed with the
 * reason, never a failure.
 *
 * Interim, said plainly: one daemon per snapshot (multi-snapshot mounts with a lineage-shared
 * cache are not on main yet). `close()` undoes everything in reverse order and never throws (what
 * it could not undo comes back as notes); `status()` is the daemon's counters (blocks fetched,
 * requests).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planBrowse } from '../browse/mount-plan.js';
import { firstLine, kernelFilesystems, loopAttach, loopDetach, mountDevice, onPath } from '../browse/system.js';
import { openFileSource } from '../disk/byte-source.js';
import { inspectDisk } from '../disk/inspect-disk.js';
import type { FilesystemInfo } from '../disk/fs-probe.js';
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
    const report = await readDisk(join(fuseDir, `${snapshotId}.img`));
    const machine = { kernelFilesystems: await kernelFilesystems(), ntfs3g: onPath('ntfs-3g') };
    const targets = planBrowse(snapshotId, report, machine, { replay: false, partition: o.partition });
    const starts = new Map(report.partitions.map((p) => [p.partition.number, p.partition.startBytes]));
    const filesystems: MountedFilesystem[] = [];
    for (const t of targets) {
      const entry: MountedFilesystem = { partition: t.partition, startBytes: t.partition === undefined ? 0 : starts.get(t.partition)!, filesystem: t.filesystem };
      filesystems.push(entry);
      if (!t.mount) {
        entry.skip = t.skip;
        continue;
      }
      let dev: string;
      try {
        dev = await loopAttach(join(fuseDir, t.fileName), true);
      } catch (err) {
        entry.skip = (err as Error).message;
        continue;
      }
      undo.push({ what: `detach ${dev}`, fn: async () => void (await loopDetach(dev)) });
      const dir = join(base, t.label);
      await mkdir(dir, { mode: 0o700 });
      const m = await mountDevice(t.mount.helper, t.mount.type, t.mount.options, dev, dir);
      if (m.code !== 0) {
        entry.skip = `mount failed: ${firstLine(m.stderr) || `exit ${m.code}`}`;
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

async function readDisk(imagePath: string) {
  const src = await openFileSource(imagePath);
  try {
    return await inspectDisk(src);
  } finally {
    await src.close();
  }
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
