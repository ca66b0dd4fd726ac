/**
 * Private paths: directories and files that only the running user may change (a server's data
 * directory, a lock, a secret). Below everything: no imports from the rest of ebsmount.
 *
 * Contract:
 * - `checkPrivateDir(path)` / `checkPrivateFile(path)`: lstat (symlinks are not followed) and
 *   throw UnsafePathError, one line naming the path and what is wrong, unless the entry is a
 *   directory / regular file owned by this process's effective user and not writable by group
 *   or others. A missing path is ENOENT (the caller decides whether to create it).
 * - `openPrivateFile(path, flags)`: opens with O_NOFOLLOW (a symlink is refused, ELOOP), and
 *   O_CREAT | O_EXCL with mode 0600 when `create` is 'new'; checks the opened descriptor the same
 *   way (fstat: no race between check and use). Returns the fd.
 * - `ensurePrivateDir(path)`: mkdir 0700 if missing (parents too), then checkPrivateDir (so an
 *   existing file is 'a regular file, expected a directory', not EEXIST).
 */
import { closeSync, constants as C, fstatSync, lstatSync, mkdirSync, openSync, type Stats } from 'node:fs';

export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
  constructor(readonly path: string, problem: string) {
    super(`${path}: ${problem}`);
  }
}

function uid(): number {
  return process.geteuid ? process.geteuid() : 0;
}

function check(path: string, st: Stats, kind: 'directory' | 'regular file'): void {
  const isKind = kind === 'directory' ? st.isDirectory() : st.isFile();
  if (!isKind) {
    const what = st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : 'not a regular file';
    throw new UnsafePathError(path, `is ${what}, expected a ${kind}`);
  }
  if (st.uid !== uid()) {
    throw new UnsafePathError(path, `is owned by uid ${st.uid}, not by the user running ebsmount (uid ${uid()}); refusing to trust it`);
  }
  if ((st.mode & 0o022) !== 0) {
    throw new UnsafePathError(
      path,
      `is writable by ${st.mode & 0o002 ? 'others' : 'its group'} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}); chmod go-w it`,
    );
  }
}

export function checkPrivateDir(path: string): void {
  check(path, lstatSync(path), 'directory');
}

export function checkPrivateFile(path: string): void {
  check(path, lstatSync(path), 'regular file');
}

export function ensurePrivateDir(path: string): void {
  try {
    lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(path, { recursive: true, mode: 0o700 });
  }
  checkPrivateDir(path);
}

/**
 * Opens `path` without following a symlink. `create`: 'new' = O_CREAT|O_EXCL (must not exist),
 * 'maybe' = O_CREAT (created 0600 if missing), 'no' = must exist. The descriptor is checked
 * (regular file, ours, not group/other-writable); on failure it is closed and the error thrown.
 */
export function openPrivateFile(path: string, access: 'r' | 'rw', create: 'new' | 'maybe' | 'no'): number {
  let flags = (access === 'r' ? C.O_RDONLY : C.O_RDWR) | C.O_NOFOLLOW;
  if (create !== 'no') flags |= C.O_CREAT;
  if (create === 'new') flags |= C.O_EXCL;
  let fd: number;
  try {
    fd = openSync(path, flags, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new UnsafePathError(path, 'is a symbolic link; refusing to follow it');
    throw err;
  }
  try {
    check(path, fstatSync(fd), 'regular file');
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}
