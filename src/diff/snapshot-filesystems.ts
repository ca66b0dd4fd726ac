/**
 * openDiffMount: both snapshots' filesystems mounted read-only for the file diff (root).
 *
 * Steps: one ebsmount daemon serves both snapshots (`ebsmount SNAP_A SNAP_B MNT`, spawnDaemon: the
 * same path as a user's mount) in a private 0700 directory: one shared memory cache, and SNAP_B's
 * unchanged blocks are read through SNAP_A's (lineage sharing), so a block the two share is
 * fetched once. Then, for each snapshot, its partition table and superblocks are read through its
 * whole-disk file (src/disk inspectDisk) and its filesystems mounted exactly as `ebsmount browse`
 * does (browse's mount-plan.ts and system.ts: a read-only loop device on each partition's own file,
 * `ro,nodev,nosuid,noexec` plus ext4 `noload`, xfs `norecovery,nouuid`, btrfs
 * `rescue=nologreplay`, NTFS through ntfs-3g). What cannot be mounted is listed with the reason,
 * never a failure.
 *
 * `close()` undoes everything in reverse order and never throws (what it could not undo comes back
 * as notes); `status()` gives each image's counters (blocks fetched, requests) from the daemon.
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
}

export interface DiffMount {
  a: SnapshotFilesystems;
  b: SnapshotFilesystems;
  /** Each image's counters, from the daemon (undefined once it is gone). */
  status(): Promise<{ a?: Record<string, number>; b?: Record<string, number> }>;
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

export async function openDiffMount(snapA: string, snapB: string, o: OpenOptions): Promise<DiffMount> {
  const registry = o.registry ?? new MountRegistry();
  const base = await mkdtemp(join(tmpdir(), 'ebsmount-diff-'));
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
    const logFile = defaultLogFile(snapB);
    const ready = await spawnDaemon({
      args: ['mount', snapA, snapB, fuseDir, ...o.awsArgs, '--read-ahead', o.readAhead ?? '1M', '--cache-size', o.cacheSize ?? '512M', '--log-file', logFile, '--daemon-fd', '3'],
      logFile,
    });
    if (!ready.ok) throw new UserError(ready.message, ready.exitCode || 1);
    undo.push({ what: `unmount ${fuseDir}`, fn: () => stopDaemon(registry, fuseDir) });
    const status = async () => {
      const st = (await collectStatus(registry, fuseDir))[0];
      const of = (id: string) => st?.images?.find((i) => i.snapshotId === id)?.stats;
      return { a: of(snapA), b: of(snapB) };
    };
    const st = (await collectStatus(registry, fuseDir))[0];
    if (!st) throw new UserError(`the mount of ${snapA} and ${snapB} at ${fuseDir} does not answer`);
    const machine = { kernelFilesystems: await kernelFilesystems(), ntfs3g: onPath('ntfs-3g') };
    const side = async (snapshotId: string, label: string): Promise<SnapshotFilesystems> => {
      const image = st.images?.find((i) => i.snapshotId === snapshotId);
      const report = await readDisk(join(fuseDir, `${snapshotId}.img`));
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
        const dir = join(base, label, t.label);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const m = await mountDevice(t.mount.helper, t.mount.type, t.mount.options, dev, dir);
        if (m.code !== 0) {
          entry.skip = `mount failed: ${firstLine(m.stderr) || `exit ${m.code}`}`;
          continue;
        }
        undo.push({ what: `unmount ${dir}`, fn: () => umount(dir) });
        entry.root = dir;
      }
      return { snapshotId, volumeSizeGiB: image?.volumeSizeGiB ?? st.volumeSizeGiB, filesystems };
    };
    const a = await side(snapA, 'a');
    const b = await side(snapB, 'b');
    return { a, b, status, close };
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
