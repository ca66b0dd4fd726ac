/**
 * Undoing a browse (`ebsmount unmount DIR` on a browse's DIR), from its BrowseRecord, in reverse
 * order: filesystems, loop devices, the directories browse created, the FUSE mount (through its
 * daemon, discarding --replay's scratch writes; or directly when the daemon is gone), the runtime
 * directory, the record.
 *
 * Contract:
 * - Works after a crash of the daemon or of browse itself: loop devices are found by their
 *   backing files under the runtime dir (not only from the record), a dead FUSE mount is
 *   unmounted with umount, steps already undone are skipped.
 * - A busy filesystem stops everything with a UserError naming it (nothing below it is touched,
 *   so running unmount again after closing the files finishes the job).
 * - Never removes the runtime dir while something is still mounted there.
 */
import { rm, rmdir } from 'node:fs/promises';
import { UserError } from '../errors/user-error.js';
import { controlRequest, ControlUnreachable } from '../mount/control-client.js';
import { unmountPath } from '../mount/kernel-unmount.js';
import { findMount } from '../mount/mountinfo.js';
import { MountRegistry } from '../mount/registry.js';
import { processIsAlive } from '../util/process.js';
import { BrowseRecords, type BrowseRecord } from './browse-record.js';
import { loopDetach, loopsBackedUnder } from './system.js';

export async function undoBrowse(rec: BrowseRecord, records: BrowseRecords, opts: { quiet?: boolean; registry?: MountRegistry } = {}): Promise<void> {
  for (const t of [...rec.targets].reverse()) {
    if (!t.mountpoint) continue;
    if (await findMount(t.mountpoint)) {
      const r = await unmountPath(t.mountpoint);
      if (!r.ok && (await findMount(t.mountpoint))) {
        throw new UserError(
          r.busy
            ? `${t.mountpoint} is busy: close the files open there (see: fuser -vm ${t.mountpoint}), then run ebsmount unmount ${rec.dir} again`
            : `cannot unmount ${t.mountpoint}: ${r.message}`,
        );
      }
    }
    t.mounted = false;
    await records.save(rec);
  }
  const loops = new Set([...rec.targets.map((t) => t.loop).filter((d): d is string => Boolean(d)), ...(await loopsBackedUnder(rec.runtimeDir))]);
  for (const dev of loops) await loopDetach(dev);
  await waitUntil(async () => (await loopsBackedUnder(rec.runtimeDir)).length === 0, 15_000);
  for (const t of rec.targets) t.loop = undefined;
  for (const t of [...rec.targets].reverse()) {
    if (t.createdDir && t.mountpoint) await rmdir(t.mountpoint).catch(() => undefined);
    t.createdDir = false;
  }
  await records.save(rec);
  await unmountFuse(rec, opts.registry ?? new MountRegistry());
  if (await findMount(rec.fuseMountpoint)) throw new UserError(`the snapshot is still mounted at ${rec.fuseMountpoint}; run ebsmount unmount ${rec.dir} again`);
  await rm(rec.runtimeDir, { recursive: true, force: true });
  await records.remove(rec.key);
  if (!opts.quiet) process.stderr.write(`ebsmount: unmounted the browse of ${rec.snapshotId} at ${rec.dir}\n`);
}

async function unmountFuse(rec: BrowseRecord, registry: MountRegistry): Promise<void> {
  const entry = await registry.findByMountpoint(rec.fuseMountpoint);
  if (entry?.alive) {
    // The kernel may still be letting go of the last loop device: a busy answer is retried briefly.
    for (let attempt = 0; attempt < 20; attempt++) {
      let final;
      try {
        final = await controlRequest(entry.socket, { op: 'unmount', discard: true });
      } catch (err) {
        if (!(err instanceof ControlUnreachable)) throw err;
        break;
      }
      if (final.ok) {
        await waitUntil(async () => !processIsAlive(entry.pid), 15_000);
        return;
      }
      if (!/busy/i.test(final.error)) throw new UserError(final.error);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  if (entry) await registry.unregister(entry.key);
  if (await findMount(rec.fuseMountpoint)) {
    const r = await unmountPath(rec.fuseMountpoint);
    if (!r.ok && (await findMount(rec.fuseMountpoint))) await unmountPath(rec.fuseMountpoint, { lazy: true });
  }
  if (rec.daemonPid && processIsAlive(rec.daemonPid)) await waitUntil(async () => !processIsAlive(rec.daemonPid!), 15_000);
}

async function waitUntil(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

/** `ebsmount unmount DIR` for a browse: true when DIR was a browse (and is undone now). */
export async function unmountBrowseAt(dir: string, records = new BrowseRecords()): Promise<boolean> {
  const rec = await records.findByDir(dir);
  if (!rec) return false;
  await undoBrowse(rec, records);
  return true;
}
