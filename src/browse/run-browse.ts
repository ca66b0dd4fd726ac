/**
 * runBrowse: what `ebsmount browse SNAP DIR [--partition N] [--replay]` does (root).
 *
 * 1. Checks: root, the snapshot id, DIR (an existing empty directory, not a mountpoint), FUSE.
 * 2. Writes a BrowseRecord (browse-record.ts) first, then mounts the snapshot with a background
 *    mount daemon (read-only; --replay: writable with --discard and its journal in the browse's
 *    runtime dir) at `<runtime>/fuse`, so partition files appear there.
 * 3. Reads the table and superblocks through those files (src/disk), plans (mount-plan.ts),
 *    and for each partition to mount: a loop device on its own partition file (read-only; no
 *    offsets, no kernel partition support needed), DIR/pN (or DIR for a bare disk or with
 *    --partition), the forensic-safe mount. Every step is recorded before the next starts.
 *    A partition that fails to mount is listed with the kernel's reason, never a failed browse.
 * 4. Prints the table (browse-format.ts). Any failure before that undoes everything (run-unbrowse),
 *    and so does Ctrl-C / SIGTERM (at the end of the step in progress).
 */
import { mkdir, rmdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { openFileSource } from '../disk/byte-source.js';
import { inspectDisk, type DiskReport } from '../disk/inspect-disk.js';
import { UserError } from '../errors/user-error.js';
import type { AwsArgs } from '../ebs/connect.js';
import { defaultLogFile } from '../mount/paths.js';
import { checkFuse, checkMountpoint, checkSnapshotId } from '../mount/preflight.js';
import { spawnDaemon } from '../mount/spawn-daemon.js';
import { BrowseRecords, type BrowseRecord, type BrowseTargetRecord } from './browse-record.js';
import { formatBrowse } from './browse-format.js';
import { planBrowse, type BrowseTarget } from './mount-plan.js';
import { undoBrowse } from './run-unbrowse.js';
import { firstLine, kernelFilesystems, loopAttach, loopDetach, mountDevice, onPath } from './system.js';

export interface BrowseArgv extends AwsArgs {
  snapshot: string;
  dir: string;
  partition?: number;
  replay?: boolean;
  cacheSize?: string;
  logLevel?: string;
}

export async function runBrowse(argv: BrowseArgv, records = new BrowseRecords()): Promise<void> {
  if ((process.getuid?.() ?? 0) !== 0) throw new UserError('browse attaches loop devices and mounts filesystems: run it as root (sudo ebsmount browse ...)');
  checkSnapshotId(String(argv.snapshot));
  if (argv.partition !== undefined && (!Number.isInteger(argv.partition) || argv.partition < 1)) throw new UserError(`--partition must be a partition number (1, 2, ...), not '${argv.partition}'`, 2);
  const dir = checkMountpoint(String(argv.dir));
  checkFuse();

  const key = records.newKey();
  const runtimeDir = records.runtimeDirOf(key);
  const rec: BrowseRecord = {
    key,
    snapshotId: argv.snapshot,
    dir,
    runtimeDir,
    fuseMountpoint: join(runtimeDir, 'fuse'),
    log: defaultLogFile(argv.snapshot),
    replay: Boolean(argv.replay),
    startedAt: new Date().toISOString(),
    state: 'starting',
    notes: [],
    targets: [],
  };
  await records.ensureDir();
  await mkdir(rec.fuseMountpoint, { recursive: true, mode: 0o700 });
  await chmod(runtimeDir, 0o700);
  await records.save(rec);
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => (interrupted ??= sig);
  const check = () => {
    if (interrupted) throw new UserError(`interrupted (${interrupted}): everything browse had mounted is undone`, 130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await startDaemon(rec, argv);
    await records.save(rec);
    check();
    const report = await readReport(rec);
    rec.notes.push(...report.table.notes);
    const machine = { kernelFilesystems: await kernelFilesystems(), ntfs3g: onPath('ntfs-3g') };
    let targets = planBrowse(rec.snapshotId, report, machine, { replay: rec.replay, partition: argv.partition });
    if (argv.partition !== undefined) {
      if (targets.length === 0) {
        const have = report.partitions.map((p) => p.partition.number).join(', ') || 'none';
        throw new UserError(`the snapshot has no partition ${argv.partition} (partitions: ${have})`);
      }
      targets = targets.map((t) => ({ ...t, subdir: '' }));
    }
    for (const t of targets) {
      check();
      await mountTarget(rec, t, records);
    }
    check();
    rec.state = 'mounted';
    await records.save(rec);
  } catch (err) {
    const undone = await undoBrowse(rec, records, { quiet: true }).then(
      () => '',
      (e: unknown) => `; undoing it failed (${(e as Error).message}): run ebsmount unmount ${rec.dir}`,
    );
    if (!undone) throw err;
    const ue = err instanceof UserError ? err : new UserError((err as Error).message);
    throw new UserError(`${ue.message}${undone}`, ue.exitCode);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(`browsing ${formatBrowse(rec)}\n`);
}

async function startDaemon(rec: BrowseRecord, argv: BrowseArgv): Promise<void> {
  const args = ['mount', rec.snapshotId, rec.fuseMountpoint, '--log-file', rec.log, '--daemon-fd', '3'];
  if (argv.endpoint) args.push('--endpoint', argv.endpoint);
  if (argv.region) args.push('--region', argv.region);
  if (argv.profile) args.push('--profile', argv.profile);
  if (argv.cacheSize) args.push('--cache-size', String(argv.cacheSize));
  if (argv.logLevel) args.push('--log-level', argv.logLevel);
  if (rec.replay) args.push('--writable', '--discard', '--journal-dir', join(rec.runtimeDir, 'journal'));
  const msg = await spawnDaemon({ args, logFile: rec.log });
  if (!msg.ok) throw new UserError(msg.message, msg.exitCode || 1);
  rec.daemonPid = msg.pid;
}

async function readReport(rec: BrowseRecord): Promise<DiskReport> {
  const src = await openFileSource(join(rec.fuseMountpoint, `${rec.snapshotId}.img`));
  try {
    return await inspectDisk(src);
  } catch (err) {
    throw new UserError(`cannot read the disk of ${rec.snapshotId}: ${(err as Error).message}`);
  } finally {
    await src.close();
  }
}

async function mountTarget(rec: BrowseRecord, t: BrowseTarget, records: BrowseRecords): Promise<void> {
  const entry: BrowseTargetRecord = {
    label: t.label,
    partition: t.partition,
    fileName: t.fileName,
    fsType: t.filesystem.type,
    fsLabel: t.filesystem.label,
    sizeBytes: t.sizeBytes,
    mounted: false,
    reason: t.skip,
  };
  rec.targets.push(entry);
  if (!t.mount) return;
  entry.helper = t.mount.helper;
  entry.type = t.mount.type;
  entry.options = t.mount.options;
  entry.mountpoint = t.subdir ? join(rec.dir, t.subdir) : rec.dir;
  if (t.subdir) {
    await mkdir(entry.mountpoint, { mode: 0o755 });
    entry.createdDir = true;
  }
  await records.save(rec);
  try {
    entry.loop = await loopAttach(join(rec.fuseMountpoint, t.fileName), !rec.replay);
  } catch (err) {
    entry.reason = (err as Error).message;
    await dropDir(entry);
    return;
  }
  await records.save(rec);
  const r = await mountDevice(t.mount.helper, t.mount.type, t.mount.options, entry.loop, entry.mountpoint);
  if (r.code === 0) {
    entry.mounted = true;
  } else {
    entry.reason = `mount failed: ${firstLine(r.stderr) || `exit ${r.code}`}`;
    await loopDetach(entry.loop);
    entry.loop = undefined;
    await dropDir(entry);
  }
  await records.save(rec);
}

async function dropDir(entry: BrowseTargetRecord): Promise<void> {
  if (entry.createdDir && entry.mountpoint) await rmdir(entry.mountpoint).catch(() => undefined);
  entry.createdDir = false;
  entry.mountpoint = undefined;
}
