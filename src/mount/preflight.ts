/**
 * Preflight checks of `ebsmount mount`, run before anything is opened or spawned, each failing
 * with a one-line UserError:
 * - the snapshot id is well formed;
 * - the mountpoint exists, is a directory, is not already a mountpoint (/proc/self/mountinfo)
 *   and is empty; it is returned as a realpath (what mountinfo will show);
 * - FUSE is usable: /dev/fuse exists, is a character device and opens read-write; libfuse.so.2
 *   loads (require('fuse-native')); a non-root user has `fusermount` on PATH;
 * - the log file can be opened for appending (created 0600, its directories 0700): not a
 *   directory, not under a file.
 */
import { accessSync, closeSync, constants, openSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { isValidSnapshotId } from '../ebs/constants.js';
import { UserError } from '../errors/user-error.js';
import { loadFuseNative } from '../fs/fuse-adapter.js';
import { LogFileError, openLogFile } from '../util/log.js';
import { findMountIn, readMountinfoSync } from './mountinfo.js';

export const FUSE_DEVICE = '/dev/fuse';

export function checkSnapshotId(id: string): void {
  if (!isValidSnapshotId(id)) {
    throw new UserError(`'${id}' is not a valid snapshot id (expected snap- followed by 17 hexadecimal digits, e.g. snap-0123456789abcdef0)`, 2);
  }
}

/** Returns the mountpoint's realpath. */
export function checkMountpoint(path: string): string {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`mountpoint ${path} does not exist (create it with: mkdir -p ${path})`);
    if (code === 'ENOTDIR') throw new UserError(`mountpoint ${path} is not a directory`);
    throw new UserError(`mountpoint ${path} cannot be used: ${(err as Error).message}`);
  }
  let isDir: boolean;
  try {
    isDir = statSync(real).isDirectory();
  } catch (err) {
    throw new UserError(`mountpoint ${path} cannot be used: ${(err as Error).message}`);
  }
  if (!isDir) throw new UserError(`mountpoint ${path} is not a directory`);
  const existing = findMountIn(readMountinfoSync(), real);
  if (existing) {
    throw new UserError(`mountpoint ${path} is already a mountpoint (${existing.fstype} ${existing.source}); unmount it first or choose another directory`);
  }
  let entries: string[];
  try {
    entries = readdirSync(real);
  } catch (err) {
    throw new UserError(`mountpoint ${path} cannot be read: ${(err as Error).message}`);
  }
  if (entries.length > 0) throw new UserError(`mountpoint ${path} is not empty (${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}); choose an empty directory`);
  return real;
}

export function checkFuse(opts: { device?: string; uid?: number; env?: NodeJS.ProcessEnv } = {}): void {
  const device = opts.device ?? FUSE_DEVICE;
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  let isChar: boolean;
  try {
    isChar = statSync(device).isCharacterDevice();
  } catch {
    throw new UserError(`FUSE is not available: ${device} does not exist (load the kernel module: modprobe fuse; in a container, pass the device: --device /dev/fuse)`);
  }
  if (!isChar) throw new UserError(`FUSE is not available: ${device} is not a character device`);
  try {
    closeSync(openSync(device, 'r+'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new UserError(`FUSE is not permitted: cannot open ${device} (${code}); run as root, or give this user access to ${device} (group fuse)`);
    }
    throw new UserError(`FUSE is not available: cannot open ${device}: ${(err as Error).message}`);
  }
  try {
    loadFuseNative();
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  if (uid !== 0 && !onPath('fusermount', opts.env ?? process.env)) {
    throw new UserError('FUSE is not available: fusermount is missing (install the fuse package: apt-get install fuse)');
  }
}

export function onPath(cmd: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Creates (0600, directories 0700) or opens the log file, so the daemon can write it. */
export function checkLogFile(path: string, opts: { privateDir?: boolean } = {}): void {
  try {
    closeSync(openLogFile(path, opts));
  } catch (err) {
    if (err instanceof LogFileError) throw new UserError(`--log-file: ${err.message}`);
    throw err;
  }
}

/** The memory this process may use: the machine's, or its cgroup's limit when lower. */
export function memoryLimitBytes(): number {
  const total = totalmem();
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  return constrained && constrained > 0 && constrained < total ? constrained : total;
}
