/**
 * One process at a time per journal: a kernel-held lock on `DIR/journal.lock` (ProcessLock,
 * src/os/process-lock.ts).
 *
 * Contract: `acquireJournalLock(dir)` succeeds when no live process holds the lock; the kernel
 * releases it when its holder dies, so after kill -9 the next `ebsmount commit --journal` just
 * works, and a pid reused after a reboot can never look like an owner. A live holder (another
 * process, or another open of the same journal in this one) gives JournalBusyError naming its
 * pid when the kernel tells it. `release()` drops it; idempotent. `journalLockHolder(dir)` names
 * the holder without taking the lock (for `ebsmount journals`). A `lock` pid file left by older
 * versions is removed once the new lock is held.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors/user-error.js';
import { acquireProcessLock, lockHolder, LockBusyError } from '../os/process-lock.js';
import { UnsafePathError } from '../os/private-path.js';
import { LOCK_FILE } from './paths.js';

const LEGACY_PID_FILE = 'lock';

export class JournalBusyError extends UserError {
  constructor(readonly dir: string, readonly pid: number | undefined) {
    super(`journal ${dir} is in use by ${pid !== undefined ? `process ${pid}` : 'another process'} (a running mount?); unmount it first`);
  }
}

export interface JournalLock {
  release(): Promise<void>;
}

export async function acquireJournalLock(dir: string): Promise<JournalLock> {
  let lock;
  try {
    lock = acquireProcessLock(join(dir, LOCK_FILE));
  } catch (err) {
    if (err instanceof LockBusyError) throw new JournalBusyError(dir, err.holderPid);
    if (err instanceof UnsafePathError) throw new UserError(`journal lock ${err.message}`);
    throw err;
  }
  await rm(join(dir, LEGACY_PID_FILE), { force: true }).catch(() => {});
  return {
    async release() {
      lock.release();
    },
  };
}

/** The pid of the process holding the journal's lock, or undefined when none does. */
export function journalLockHolder(dir: string): number | undefined {
  return lockHolder(join(dir, LOCK_FILE));
}
