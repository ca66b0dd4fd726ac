/**
 * walkTree: every entry of a directory tree, in one fixed order, with what the file diff
 * compares — read-only (lstat, readdir, readlink; never follows a symlink, never crosses into
 * another filesystem mounted below the root).
 *
 * Contract:
 * - Order: depth-first, a directory before its children, names within a directory sorted by
 *   their UTF-16 code units; `comparePaths` is that same order, so two walks can be merged.
 * - Paths are relative to the root, '/'-separated, without a leading slash ('' is the root
 *   itself, which is not yielded). `prefix` restricts the walk to that subtree (its own entry
 *   included; nothing when it does not exist).
 * - An entry that cannot be read is yielded with `error` set; a directory that cannot be listed
 *   is reported to `onProblem` (its children are not walked). The walk goes on either way.
 */
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

export interface TreeEntry {
  path: string;
  type: EntryType;
  /** Permission bits with setuid/setgid/sticky (mode & 0o7777). */
  perm: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  ino: number;
  rdev: number;
  /** The filesystem (st_dev) the entry lives on. */
  dev: bigint;
  /** Symlink target. */
  target?: string;
  error?: string;
}

function typeOf(mode: number): EntryType {
  switch (mode & 0o170000) {
    case 0o040000: return 'dir';
    case 0o120000: return 'symlink';
    case 0o010000: return 'fifo';
    case 0o140000: return 'socket';
    case 0o020000: return 'chardev';
    case 0o060000: return 'blockdev';
    default: return 'file';
  }
}

/** The walk's order: component by component. */
export function comparePaths(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  }
  return x.length - y.length;
}

export async function statEntry(root: string, rel: string): Promise<TreeEntry> {
  const abs = join(root, rel);
  try {
    const st = await lstat(abs, { bigint: true });
    const type = typeOf(Number(st.mode));
    const e: TreeEntry = {
      path: rel,
      type,
      perm: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: Number(st.size),
      mtimeNs: st.mtimeNs,
      ino: Number(st.ino),
      rdev: Number(st.rdev),
      dev: st.dev,
    };
    if (type === 'symlink') e.target = await readlink(abs);
    return e;
  } catch (err) {
    return { path: rel, type: 'file', perm: 0, uid: 0, gid: 0, size: 0, mtimeNs: 0n, ino: 0, rdev: 0, dev: 0n, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
}

export interface WalkOptions {
  prefix?: string;
  onProblem?: (path: string, message: string) => void;
}

export async function* walkTree(root: string, opts: WalkOptions = {}): AsyncGenerator<TreeEntry> {
  const rootDev = (await lstat(root, { bigint: true })).dev;
  const prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix) {
    const top = await statEntry(root, prefix);
    if (top.error === 'ENOENT') return;
    yield top;
    if (top.type === 'dir' && !top.error) yield* walkDir(root, prefix, rootDev, opts);
    return;
  }
  yield* walkDir(root, '', rootDev, opts);
}

async function* walkDir(root: string, rel: string, rootDev: bigint, opts: WalkOptions): AsyncGenerator<TreeEntry> {
  let names: string[];
  try {
    names = await readdir(join(root, rel));
  } catch (err) {
    opts.onProblem?.(rel, `cannot list the directory: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return;
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    const path = rel ? `${rel}/${name}` : name;
    const e = await statEntry(root, path);
    yield e;
    // Another filesystem mounted below the root is not ours to walk.
    if (e.type === 'dir' && !e.error && e.dev === rootDev) yield* walkDir(root, path, rootDev, opts);
  }
}
