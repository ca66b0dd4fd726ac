/**
 * FUSE mount options of an ebsmount mount: what fuse-native is given, what we append to its
 * `_fuseOptions()` string (native/README.md), and what the kernel must then show in
 * /proc/self/mountinfo. Pure: no I/O.
 *
 * Choices (DESIGN §2, §4):
 * - read-only: `kernel_cache` (a snapshot never changes, so the page cache may keep its pages
 *   across opens; `auto_cache` stays off: it would drop them on every mtime check) and `ro`.
 * - writable: `big_writes,max_write=1048576` (without them the kernel sends 4 KiB writes).
 *   No kernel_cache: our own writes go through the page cache anyway, and nothing else writes.
 * - always: `max_read=131072`, `fsname=ebsmount:SNAP`, `subtype=ebsmount`,
 *   `default_permissions` (the kernel checks the file mode, so 0400 means what it says), and
 *   `allow_other` only when asked.
 * - the op timeout sits above the read retry budget (src/ebs/retry.ts) plus one request timeout
 *   (src/ebs/client-options.ts), so a read that keeps failing answers EIO from our code instead
 *   of ETIMEDOUT from fuse-native's timer.
 */
import { DEFAULT_REQUEST_TIMEOUT_MS } from '../ebs/client-options.js';
import { READ_RETRY } from '../ebs/retry.js';

export const MAX_READ_BYTES = 131_072;
export const MAX_WRITE_BYTES = 1_048_576;
/**
 * fuse-native's per-op timeout: no retry starts after READ_RETRY's budget, and the last attempt
 * may take up to one request timeout, so the op answers (data or EIO) before this fires.
 */
export const FUSE_OP_TIMEOUT_MS = READ_RETRY.budgetMs + DEFAULT_REQUEST_TIMEOUT_MS + 5_000;

export interface FuseMountSettings {
  snapshotId: string;
  writable: boolean;
  allowOther: boolean;
}

/** The options fuse-native itself understands (its whitelist). */
export function nativeFuseOptions(s: FuseMountSettings): {
  timeout: number;
  fsname: string;
  subtype: string;
  maxRead: number;
  defaultPermissions: boolean;
  allowOther: boolean;
  kernelCache: boolean;
  autoCache: boolean;
} {
  return {
    timeout: FUSE_OP_TIMEOUT_MS,
    fsname: fsnameOf(s.snapshotId),
    subtype: 'ebsmount',
    maxRead: MAX_READ_BYTES,
    defaultPermissions: true,
    allowOther: s.allowOther,
    kernelCache: !s.writable,
    autoCache: false,
  };
}

/** Options fuse-native's whitelist lacks, appended to its `-o...` string. */
export function extraFuseOptions(s: FuseMountSettings): string[] {
  return s.writable ? ['big_writes', `max_write=${MAX_WRITE_BYTES}`] : ['ro'];
}

/** Appends `extra` to a fuse-native options string ('' or '-oa,b'). */
export function appendFuseOptions(base: string, extra: string[]): string {
  if (extra.length === 0) return base;
  if (!base) return `-o${extra.join(',')}`;
  return `${base},${extra.join(',')}`;
}

export function fsnameOf(snapshotId: string): string {
  return `ebsmount:${snapshotId}`;
}

/**
 * What /proc/self/mountinfo must show once mounted: the filesystem type and source, and options
 * the kernel keeps (max_read, allow_other, default_permissions, ro). kernel_cache and big_writes
 * are libfuse-side flags the kernel does not list, so they cannot be checked there.
 */
export function expectedMountinfo(s: FuseMountSettings): { fstype: string; source: string; superOptions: string[]; mountOptions: string[] } {
  const superOptions = [`max_read=${MAX_READ_BYTES}`, 'default_permissions'];
  if (s.allowOther) superOptions.push('allow_other');
  return { fstype: 'fuse.ebsmount', source: fsnameOf(s.snapshotId), superOptions, mountOptions: s.writable ? ['rw'] : ['ro'] };
}
