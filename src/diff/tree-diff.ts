/**
 * diffTrees: what differs between two read-only directory trees, as `git diff --name-status`
 * would say it, reading file data only where it must.
 *
 * Statuses: A added, D deleted, T type changed (e.g. file → symlink), M content changed,
 * m metadata only: mode, owner, xattrs, symlink target, device number, or a timestamp change
 * that kept the content. Directories are compared by mode, owner and xattrs only (their size and
 * mtime change whenever an entry is added or removed, which the entries' own lines already say).
 * atime and ctime are never compared (reading changes the one, any inode change the other).
 *
 * How a regular file present on both sides is judged:
 * - sizes differ → M.
 * - same size, on a filesystem whose extents map to disk offsets (`dataChanged` given): when both
 *   sides' extents are the same and none overlaps a changed block, the bytes are the same without
 *   reading them; otherwise both files are read and compared (stopping at the first difference).
 *   A difference with the mtime unchanged is M flagged `timestampsUnchanged` — a hidden change.
 * - same size, extents not mappable (`dataChanged` absent, e.g. btrfs): mtime differs → M,
 *   otherwise unchanged; content is never read (a metadata walk; the caller says so once).
 * - `content`: both sides of every regular-file M are hashed (sha256).
 *
 * Contract: yields changes in the walk's order (tree-walk.ts), streaming, with bounded memory:
 * entries are judged in batches of `batchSize`, one filefrag and one getfattr run per side per
 * batch. `stats` counts files whose data was read and the bytes read.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { fileExtents, sameExtents, type Extent, type ExtentList } from './extents.js';
import { comparePaths, walkTree, type EntryType, type TreeEntry } from './tree-walk.js';
import { readXattrs, xattrChanges, type Xattrs } from './xattrs.js';

export type ChangeStatus = 'A' | 'D' | 'M' | 'T' | 'm';

export interface TreeChange {
  status: ChangeStatus;
  /** '/'-prefixed path inside the filesystem. */
  path: string;
  /** Type on each side that has the entry. */
  typeA?: EntryType;
  typeB?: EntryType;
  /** What changed, human-readable: "size 10 → 20", "mode 0644 → 0755", "xattr user.k"... */
  details: string[];
  timestampsUnchanged?: boolean;
  sha256?: { a: string; b: string };
}

export interface TreeDiffStats {
  /** Entries walked (both sides, paired entries once). */
  entries?: number;
  filesRead: number;
  bytesRead: number;
  extentChecks: number;
}

export interface TreeDiffOptions {
  rootA: string;
  rootB: string;
  prefix?: string;
  /**
   * Whether any of these extents (byte offsets on the filesystem's device) lies on a block that
   * changed between the snapshots. Absent: extents cannot be mapped to the disk on this
   * filesystem, so unchanged-looking files are not checked.
   */
  dataChanged?: (extents: Extent[]) => boolean;
  content?: boolean;
  /** Compare xattrs (default true; needs getfattr). */
  xattrs?: boolean;
  batchSize?: number;
  stats?: TreeDiffStats;
  onNote?: (note: string) => void;
  /** Checked between batches: an aborted walk stops with the signal's reason. */
  signal?: AbortSignal;
}

interface Pair {
  path: string;
  a?: TreeEntry;
  b?: TreeEntry;
}

function oct(n: number): string {
  return `0${n.toString(8).padStart(3, '0')}`;
}

async function* merged(opts: TreeDiffOptions): AsyncGenerator<Pair> {
  const problem = (side: string) => (path: string, msg: string) => opts.onNote?.(`${side} /${path}: ${msg}`);
  const ia = walkTree(opts.rootA, { prefix: opts.prefix, onProblem: problem('A') });
  const ib = walkTree(opts.rootB, { prefix: opts.prefix, onProblem: problem('B') });
  let a = await ia.next();
  let b = await ib.next();
  while (!a.done || !b.done) {
    const c = a.done ? 1 : b.done ? -1 : comparePaths(a.value.path, b.value.path);
    if (c === 0) {
      yield { path: a.value!.path, a: a.value as TreeEntry, b: b.value as TreeEntry };
      a = await ia.next();
      b = await ib.next();
    } else if (c < 0) {
      yield { path: (a.value as TreeEntry).path, a: a.value as TreeEntry };
      a = await ia.next();
    } else {
      yield { path: (b.value as TreeEntry).path, b: b.value as TreeEntry };
      b = await ib.next();
    }
  }
}

export async function* diffTrees(opts: TreeDiffOptions): AsyncGenerator<TreeChange> {
  const batchSize = opts.batchSize ?? 256;
  const stats = opts.stats ?? { filesRead: 0, bytesRead: 0, extentChecks: 0 };
  const ctx: BatchContext = { opts, stats, xattrsWorking: opts.xattrs !== false };
  let batch: Pair[] = [];
  for await (const pair of merged(opts)) {
    stats.entries = (stats.entries ?? 0) + 1;
    batch.push(pair);
    if (batch.length >= batchSize) {
      opts.signal?.throwIfAborted();
      yield* await judgeBatch(batch, ctx);
      batch = [];
    }
  }
  if (batch.length) yield* await judgeBatch(batch, ctx);
}

interface BatchContext {
  opts: TreeDiffOptions;
  stats: TreeDiffStats;
  xattrsWorking: boolean;
}

async function xattrsOf(ctx: BatchContext, root: string, entries: TreeEntry[]): Promise<Map<string, Xattrs> | undefined> {
  if (!ctx.xattrsWorking || entries.length === 0) return undefined;
  try {
    return await readXattrs(entries.map((e) => join(root, e.path)));
  } catch (err) {
    ctx.xattrsWorking = false;
    ctx.opts.onNote?.(`xattrs not compared: getfattr (Debian package attr) ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is not installed' : `failed: ${(err as Error).message}`}`);
    return undefined;
  }
}

async function judgeBatch(batch: Pair[], ctx: BatchContext): Promise<TreeChange[]> {
  const { opts } = ctx;
  const both = batch.filter((p) => p.a && p.b && !p.a.error && !p.b.error && p.a.type === p.b.type);
  const [xa, xb] = await Promise.all([
    xattrsOf(ctx, opts.rootA, both.map((p) => p.a!)),
    xattrsOf(ctx, opts.rootB, both.map((p) => p.b!)),
  ]);
  // Files whose data may have changed behind an unchanged size: their extents decide.
  const extentCandidates = opts.dataChanged ? both.filter((p) => p.a!.type === 'file' && p.a!.size === p.b!.size && p.a!.size > 0) : [];
  let ea = new Map<string, ExtentList>();
  let eb = new Map<string, ExtentList>();
  if (extentCandidates.length) {
    [ea, eb] = await Promise.all([
      fileExtents(extentCandidates.map((p) => join(opts.rootA, p.path))),
      fileExtents(extentCandidates.map((p) => join(opts.rootB, p.path))),
    ]);
    ctx.stats.extentChecks += extentCandidates.length;
  }
  const out: TreeChange[] = [];
  for (const p of batch) {
    const c = await judgePair(p, ctx, {
      xa: xa?.get(join(opts.rootA, p.path)),
      xb: xb?.get(join(opts.rootB, p.path)),
      ea: ea.get(join(opts.rootA, p.path)),
      eb: eb.get(join(opts.rootB, p.path)),
    });
    if (c) out.push(c);
  }
  return out;
}

interface PairFacts {
  xa?: Xattrs;
  xb?: Xattrs;
  ea?: ExtentList;
  eb?: ExtentList;
}

async function judgePair(p: Pair, ctx: BatchContext, f: PairFacts): Promise<TreeChange | undefined> {
  const path = `/${p.path}`;
  const { a, b } = p;
  if (!a) return { status: 'A', path, typeB: b!.type, details: b!.error ? [`cannot read: ${b!.error}`] : [] };
  if (!b) return { status: 'D', path, typeA: a.type, details: a.error ? [`cannot read: ${a.error}`] : [] };
  if (a.error || b.error) {
    ctx.opts.onNote?.(`${path}: cannot read (${a.error ? `A: ${a.error}` : ''}${a.error && b.error ? ', ' : ''}${b.error ? `B: ${b.error}` : ''})`);
    return undefined;
  }
  if (a.type !== b.type) return { status: 'T', path, typeA: a.type, typeB: b.type, details: [`${a.type} → ${b.type}`] };

  const meta: string[] = [];
  if (a.perm !== b.perm && a.type !== 'symlink') meta.push(`mode ${oct(a.perm)} → ${oct(b.perm)}`);
  if (a.uid !== b.uid || a.gid !== b.gid) meta.push(`owner ${a.uid}:${a.gid} → ${b.uid}:${b.gid}`);
  if (a.type === 'symlink' && a.target !== b.target) meta.push(`target ${a.target} → ${b.target}`);
  if ((a.type === 'chardev' || a.type === 'blockdev') && a.rdev !== b.rdev) meta.push(`device ${a.rdev} → ${b.rdev}`);
  for (const name of xattrChanges(f.xa, f.xb)) meta.push(`xattr ${name}`);
  const mtimeChanged = a.mtimeNs !== b.mtimeNs;

  if (a.type === 'dir') return meta.length ? { status: 'm', path, typeA: a.type, typeB: b.type, details: meta } : undefined;
  if (a.type !== 'file') {
    if (mtimeChanged) meta.push('mtime');
    return meta.length ? { status: 'm', path, typeA: a.type, typeB: b.type, details: meta } : undefined;
  }

  const dataSame = await sameData(a, b, ctx, f);
  if (!dataSame) {
    const details = a.size !== b.size ? [`size ${a.size} → ${b.size}`] : ['content'];
    const change: TreeChange = { status: 'M', path, typeA: 'file', typeB: 'file', details: [...details, ...meta] };
    if (!mtimeChanged) {
      change.timestampsUnchanged = true;
      change.details.push('timestamps unchanged');
    }
    if (ctx.opts.content) {
      const [ha, hb] = await Promise.all([hashFile(join(ctx.opts.rootA, p.path), ctx.stats), hashFile(join(ctx.opts.rootB, p.path), ctx.stats)]);
      change.sha256 = { a: ha, b: hb };
    }
    return change;
  }
  if (mtimeChanged) meta.push('mtime');
  return meta.length ? { status: 'm', path, typeA: 'file', typeB: 'file', details: meta } : undefined;
}

async function sameData(a: TreeEntry, b: TreeEntry, ctx: BatchContext, f: PairFacts): Promise<boolean> {
  if (a.size !== b.size) return false;
  if (a.size === 0) return true;
  const dataChanged = ctx.opts.dataChanged;
  if (!dataChanged) return a.mtimeNs === b.mtimeNs;
  if (f.ea && f.eb && f.ea !== 'unknown' && f.eb !== 'unknown' && sameExtents(f.ea, f.eb) && !dataChanged(f.eb)) return true;
  return sameContent(join(ctx.opts.rootA, a.path), join(ctx.opts.rootB, b.path), ctx.stats);
}

const CHUNK = 1024 * 1024;

/** Byte-for-byte comparison, stopping at the first difference. */
export async function sameContent(pathA: string, pathB: string, stats?: TreeDiffStats): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(pathA, 'r'), open(pathB, 'r')]);
  if (stats) stats.filesRead += 2;
  try {
    const ba = Buffer.allocUnsafe(CHUNK);
    const bb = Buffer.allocUnsafe(CHUNK);
    for (let pos = 0; ; pos += CHUNK) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, CHUNK, pos), fb.read(bb, 0, CHUNK, pos)]);
      if (stats) stats.bytesRead += ra.bytesRead + rb.bytesRead;
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

export async function hashFile(path: string, stats?: TreeDiffStats): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let pos = 0; ; ) {
      const r = await fh.read(buf, 0, CHUNK, pos);
      if (r.bytesRead === 0) break;
      h.update(buf.subarray(0, r.bytesRead));
      pos += r.bytesRead;
      if (stats) stats.bytesRead += r.bytesRead;
    }
  } finally {
    await fh.close();
  }
  if (stats) stats.filesRead++;
  return h.digest('hex');
}
