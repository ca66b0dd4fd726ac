/**
 * processIsAlive: whether a pid names a running process, for stale-lock and stale-registry checks.
 *
 * Contract: EPERM (someone else's live process) counts as alive; a zombie or dead task (exited,
 * not yet reaped: it holds no FUSE session, no lock) counts as gone; when /proc cannot be read
 * the kill(0) answer stands.
 */
import { readFileSync } from 'node:fs';

export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}
