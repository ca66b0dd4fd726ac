/**
 * runUnmount: what `ebsmount unmount MOUNTPOINT [--discard]` does.
 *
 * - With a live daemon registered for the mountpoint: ask it over the control socket; it
 *   unmounts, commits a writable mount (progress on stderr when it is a TTY) and replies. The new
 *   snapshot id goes to stdout, every other message to stderr. Then wait (briefly) until the
 *   daemon process is gone, so "unmount returned" means "daemon ended".
 * - Daemon gone (no entry, dead pid, nothing on the socket): remove the stale entry; if an
 *   ebsmount mount is still in the mount table, `umount` / `fusermount -u` it.
 * - Busy, not mounted, not an ebsmount mount, failed commit: one-line UserError.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { UserError } from '../errors/user-error.js';
import { controlRequest, ControlUnreachable } from './control-client.js';
import { unmountPath } from './kernel-unmount.js';
import { findMount, isEbsmountEntry } from './mountinfo.js';
import { MountRegistry } from './registry.js';
import { processIsAlive } from '../util/process.js';

export interface UnmountArgv {
  mountpoint: string;
  discard?: boolean;
}

export async function runUnmount(argv: UnmountArgv, registry = new MountRegistry()): Promise<void> {
  const mnt = canonical(String(argv.mountpoint));
  const entry = await registry.findByMountpoint(mnt);
  if (entry?.alive) {
    let final;
    try {
      final = await controlRequest(entry.socket, { op: 'unmount', discard: Boolean(argv.discard) }, { onProgress: progressPrinter() });
    } catch (err) {
      if (!(err instanceof ControlUnreachable)) throw err;
      final = undefined;
    }
    if (final) {
      if (process.stderr.isTTY) process.stderr.write('\n');
      if (!final.ok) throw new UserError(final.error);
      await waitForExit(entry.pid, 15_000);
      if (final.snapshotId) process.stdout.write(`${final.snapshotId}\n`);
      if (final.message) process.stderr.write(`ebsmount: ${final.message}\n`);
      return;
    }
  }
  if (entry) await registry.unregister(entry.key);
  const m = await findMount(mnt);
  if (!m) throw new UserError(`${argv.mountpoint} is not mounted`);
  if (!isEbsmountEntry(m)) throw new UserError(`${argv.mountpoint} is not an ebsmount mount (${m.fstype} ${m.source})`);
  const r = await unmountPath(mnt);
  if (!r.ok) {
    throw new UserError(r.busy ? `${argv.mountpoint} is busy: close files on it and detach its loop devices (losetup -a), then try again` : r.message);
  }
  process.stderr.write(`ebsmount: unmounted ${mnt} (its daemon was not running)\n`);
}

function canonical(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (processIsAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
}

function progressPrinter(): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (now - last < 200 && done !== total) return;
    last = now;
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    process.stderr.write(`\rcommitting: ${done}/${total} blocks (${pct}%)`);
  };
}
