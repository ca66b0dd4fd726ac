/**
 * The server's data directory: only the serving user may change anything in it, so nothing read
 * back from it (metadata, block files, the token secret, the lock) can have been planted.
 *
 * Contract:
 * - `prepareDataDir(dir)` creates it (0700, parents as needed) or, when it exists, requires a
 *   directory (a symlink named by the user is resolved once; its target is checked) owned by this process's user and not writable by group or others
 *   (UnsafePathError otherwise: one line naming the path and the problem). Readable bits for
 *   group/others are removed (chmod 0700): the blocks are a disk's data. Returns the real path,
 *   which every later path is built from.
 * - `loadSecret(path)`: the token secret, 32 random bytes, created once (0600, O_EXCL temp file
 *   then rename, fsynced) and reused so tokens survive restarts. An existing file must be a
 *   regular file of ours, not writable by others, never reached through a symlink.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, lstatSync, readSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensurePrivateDir, openPrivateFile } from '../os/private-path.js';
import { fsyncDir } from './block-files.js';

export function prepareDataDir(given: string): string {
  let dir = given;
  try {
    dir = realpathSync(given); // a symlink the user named is followed once, here; then checked
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  ensurePrivateDir(dir);
  const mode = lstatSync(dir).mode & 0o777;
  if (mode !== 0o700) chmodSync(dir, 0o700);
  return dir;
}

const SECRET_BYTES = 32;

export async function loadSecret(path: string): Promise<Buffer> {
  let fd: number | undefined;
  try {
    fd = openPrivateFile(path, 'r', 'no');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (fd !== undefined) {
    try {
      const buf = Buffer.alloc(SECRET_BYTES + 1);
      const n = readSync(fd, buf, 0, buf.length, 0);
      if (n === SECRET_BYTES) return buf.subarray(0, SECRET_BYTES);
    } finally {
      closeSync(fd);
    }
  }
  const secret = randomBytes(SECRET_BYTES);
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  const out = openPrivateFile(tmp, 'rw', 'new');
  try {
    writeSync(out, secret, 0, secret.length, 0);
    fsyncSync(out);
  } finally {
    closeSync(out);
  }
  renameSync(tmp, path);
  await fsyncDir(dirname(path));
  return secret;
}
