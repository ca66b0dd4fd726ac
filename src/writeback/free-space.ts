/**
 * Free space where a journal lives: a writable mount warns at mount time when the journal's
 * filesystem has little room (writes beyond it fail with ENOSPC; nothing acknowledged is lost).
 *
 * Contract: freeBytes(path) statfs's the nearest existing ancestor of `path` (the journal
 * directory may not exist yet) and resolves to the bytes an unprivileged writer may use, or
 * undefined when it cannot tell. spaceWarning(path, wantBytes) is one line when fewer than
 * `wantBytes` are free, else undefined.
 */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatBytes } from '../util/format.js';

/** Below this, a writable mount warns whatever the volume size. */
export const LOW_JOURNAL_SPACE_BYTES = 1024 ** 3;

export async function freeBytes(path: string): Promise<number | undefined> {
  for (let p = path; ; p = dirname(p)) {
    try {
      const s = await statfs(p);
      return s.bavail * s.bsize;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(p) === p) return undefined;
    }
  }
}

export async function spaceWarning(path: string, wantBytes: number): Promise<string | undefined> {
  const free = await freeBytes(path);
  if (free === undefined || free >= wantBytes) return undefined;
  return `only ${formatBytes(free)} free for the journal in ${path}: writes beyond that fail with ENOSPC `
    + '(the writing program gets the error; nothing acknowledged is lost)';
}
