/**
 * The journals on this machine: every directory under a journal root that holds a meta.json.
 *
 * Contract: a journal made elsewhere (--journal-dir) is registered by a symlink
 * `<root>/<journal-id>` → its directory (`registerJournal`), so it is listed too; a link whose
 * target is gone is skipped. `listJournals(root)` reads each journal without locking or
 * changing it (a running mount may own it) and reports its state, parent, child, dirty blocks (replayed from index.log;
 * for committed journals, the blocks the commit wrote), bytes used on disk, and whether a live
 * process holds it. Directories that are not journals are skipped; unreadable journals are
 * reported with `error` set. Newest first.
 */
import { lstat, mkdir, readdir, realpath, rm, stat, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Journal, type JournalMeta, type JournalState } from './journal.js';
import { journalLockHolder } from './journal-lock.js';
import { BLOCKS_FILE, INDEX_FILE, META_FILE } from './paths.js';

export interface JournalInfo {
  journalId: string;
  dir: string;
  parentSnapshotId: string;
  childSnapshotId: string | null;
  /** `completing`: committing, with the child's completion requested and not yet seen completed. */
  state: JournalState | 'completing' | 'damaged';
  dirtyBlocks: number;
  /** Bytes the journal's files take on disk. */
  bytes: number;
  createdAt: string;
  description?: string;
  endpoint?: string;
  /** pid of the live process that holds the journal (a running mount), if any. */
  inUseBy?: number;
  lastError?: string;
  error?: string;
}

export async function listJournals(root: string, opts: { all?: boolean } = {}): Promise<JournalInfo[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: JournalInfo[] = [];
  for (const name of names) {
    let dir = join(root, name);
    if (!(await Journal.exists(dir))) continue;
    dir = await realpath(dir).catch(() => dir);
    const info = await describeJournal(dir);
    if (!opts.all && info.state === 'committed') continue;
    out.push(info);
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** Makes a journal outside `root` visible to listJournals(root). No-op when it is inside. */
export async function registerJournal(root: string, journalId: string, dir: string): Promise<void> {
  const target = await realpath(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  if (dirname(target) === (await realpath(root))) return;
  const link = join(root, journalId);
  await rm(link, { force: true });
  await symlink(target, link);
}

/** Removes the registration link of a journal (if any). */
export async function unregisterJournal(root: string, journalId: string): Promise<void> {
  const link = join(root, journalId);
  try {
    const st = await lstat(link);
    if (st.isSymbolicLink()) await rm(link, { force: true });
  } catch {
    // not registered
  }
}

export async function describeJournal(dir: string): Promise<JournalInfo> {
  let meta: JournalMeta;
  try {
    meta = await Journal.readMeta(dir);
  } catch (err) {
    return {
      journalId: '?', dir, parentSnapshotId: '?', childSnapshotId: null, state: 'damaged', dirtyBlocks: 0,
      bytes: await diskBytes(dir), createdAt: '', error: (err as Error).message,
    };
  }
  const info: JournalInfo = {
    journalId: meta.journalId,
    dir,
    parentSnapshotId: meta.parentSnapshotId,
    childSnapshotId: meta.childSnapshotId ?? null,
    state: meta.state === 'committing' && meta.completionRequested ? 'completing' : meta.state,
    dirtyBlocks: meta.committedBlocks ?? 0,
    bytes: await diskBytes(dir),
    createdAt: meta.createdAt,
    ...(meta.description ? { description: meta.description } : {}),
    ...(meta.endpoint ? { endpoint: meta.endpoint } : {}),
    ...(meta.lastError ? { lastError: meta.lastError } : {}),
  };
  const owner = lockOwner(dir);
  if (owner !== undefined) info.inUseBy = owner;
  if (meta.state !== 'committed') {
    try {
      const j = await Journal.open(dir, { readOnly: true });
      info.dirtyBlocks = j.dirtyBlockCount;
      await j.close();
    } catch (err) {
      info.state = 'damaged';
      info.error = (err as Error).message;
    }
  }
  return info;
}

function lockOwner(dir: string): number | undefined {
  const pid = journalLockHolder(dir);
  return pid !== process.pid ? pid : undefined;
}

async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of [META_FILE, BLOCKS_FILE, INDEX_FILE]) {
    try {
      total += (await stat(join(dir, name))).blocks * 512;
    } catch {
      // missing: committed journals keep only meta.json
    }
  }
  return total;
}
