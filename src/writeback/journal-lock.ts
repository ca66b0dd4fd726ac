/**
 * One process at a time per journal: a `lock` file holding the owner's pid.
 *
 * Contract: `acquireJournalLock(dir)` succeeds when there is no lock, when the lock names this
 * process, or when it names a process that no longer runs (kill -9 leaves a stale lock: the
 * next `ebsmount commit --journal` must still work). A live owner gives JournalBusyError naming
 * its pid. `release()` removes the lock only if it still names this process.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { processIsAlive } from '../util/process.js';
import { join } from 'node:path';
import { UserError } from '../errors/user-error.js';
import { LOCK_FILE } from './paths.js';

export class JournalBusyError extends UserError {
  constructor(readonly dir: string, readonly pid: number) {
    super(`journal ${dir} is in use by process ${pid} (a running mount?); unmount it first`);
  }
}

export interface JournalLock {
  release(): Promise<void>;
}

export async function acquireJournalLock(dir: string): Promise<JournalLock> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } finally {
        await fh.close();
      }
      return lockHandle(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (pid === process.pid) return lockHandle(path);
    if (Number.isInteger(pid) && pid > 0 && processIsAlive(pid)) throw new JournalBusyError(dir, pid);
    await rm(path, { force: true }); // stale: its owner is gone
  }
  throw new UserError(`could not lock journal ${dir}`);
}

function lockHandle(path: string): JournalLock {
  return {
    async release() {
      const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
      if (pid === process.pid) await rm(path, { force: true });
    },
  };
}
