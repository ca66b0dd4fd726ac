/**
 * ProcessLock: an exclusive lock on a file, held by this process until it releases it or dies.
 * Below everything (imports only node:, better-sqlite3 and ./private-path).
 *
 * How: the kernel holds it. The lock file is an (empty) SQLite database; the connection opens an
 * exclusive transaction (`locking_mode=EXCLUSIVE`, `BEGIN EXCLUSIVE`) and never ends it, so
 * SQLite holds its fcntl write lock until the connection closes; nothing is ever written. So a crash or kill -9 releases it (the kernel drops a dead process's locks),
 * a pid reused after a reboot cannot make it look held (no pid file is trusted), and of two racing
 * starts the kernel grants it to exactly one. Node has no flock(2); SQLite is already a dependency
 * (the server's metadata), and its unix VFS guards its own connections from fcntl's pitfall
 * (closing any descriptor of a file drops the process's locks on it): nothing else in the
 * process may open the lock file itself.
 *
 * Contract:
 * - `acquireProcessLock(path)`: creates the file if missing (0600, never through a symlink: see
 *   openPrivateFile), refuses an unsafe one (UnsafePathError: not ours, writable by others), and
 *   takes the lock without waiting. Held by another process (or another holder in this one):
 *   LockBusyError, with the holder's pid when the kernel names it (/proc/locks).
 * - `release()` closes the connection, which drops the lock; idempotent. The file stays (removing
 *   it would let a racing acquirer lock an unlinked inode while a third creates a new file).
 * - `lockHolder(path)`: the pid holding the lock, from /proc/locks (takes no lock itself, so it
 *   cannot disturb an acquirer); undefined when free, missing, or /proc/locks is unreadable.
 */
import { closeSync, readFileSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { openPrivateFile } from './private-path.js';

export class LockBusyError extends Error {
  override readonly name = 'LockBusyError';
  constructor(readonly path: string, readonly holderPid: number | undefined) {
    super(`${path} is locked by ${holderPid !== undefined ? `process ${holderPid}` : 'another process'}`);
  }
}

export interface ProcessLock {
  readonly path: string;
  release(): void;
}

export function acquireProcessLock(path: string): ProcessLock {
  closeSync(openPrivateFile(path, 'rw', 'maybe')); // closed before SQLite locks: no fcntl pitfall
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { timeout: 0 });
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE'); // never committed: writes nothing, holds the write lock until close
  } catch (err) {
    db?.close();
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new LockBusyError(path, lockHolder(path));
    if (code === 'SQLITE_NOTADB') throw new Error(`${path} is not a lock file written by ebsmount (remove it if nothing uses it)`);
    throw err;
  }
  let held: Database.Database | undefined = db;
  return {
    path,
    release() {
      held?.close();
      held = undefined;
    },
  };
}

/** The pid holding a POSIX lock on `path`, from /proc/locks; undefined if none (or unknown). */
export function lockHolder(path: string): number | undefined {
  let st;
  let table: string;
  try {
    st = statSync(path);
    table = readFileSync('/proc/locks', 'latin1');
  } catch {
    return undefined;
  }
  const dev = st.dev;
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
  for (const line of table.split('\n')) {
    // "1: POSIX  ADVISORY  WRITE 1234 fd:01:567 1073741824 1073742335"  (OFDLCK lines show pid -1)
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || (f[1] !== 'POSIX' && f[1] !== 'FLOCK')) continue;
    const id = /^([0-9a-f]+):([0-9a-f]+):(\d+)$/.exec(f[5]!);
    if (!id || Number(id[3]) !== st.ino) continue;
    if (parseInt(id[1]!, 16) !== major || parseInt(id[2]!, 16) !== minor) continue;
    const pid = Number(f[4]);
    if (Number.isInteger(pid) && pid > 0) return pid;
  }
  return undefined;
}
