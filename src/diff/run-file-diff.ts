/**
 * runFileDiff: `ebsmount diff --files SNAP_A SNAP_B` (root) — which files changed.
 *
 * 1. ListChangedBlocks(A, B) gives the changed blocks (changed-blocks.ts). Unrelated snapshots:
 *    no such list exists, so every same-size file is compared by content (said in a note).
 * 2. Both snapshots are served by one daemon (shared cache, B's unchanged blocks read through A's)
 *    and their filesystems mounted read-only (snapshot-filesystems.ts). The same snapshot twice:
 *    nothing to compare, nothing mounted.
 * 3. Partitions are paired by number (a filesystem UUID that differs is noted, the pair still
 *    compared); one only on one side is noted. `partition` restricts to one.
 * 4. Each pair is walked (tree-diff.ts). Where extents map to disk offsets (ext2/3/4, xfs: FIEMAP
 *    offsets are the device's, plus the partition's start on the disk) a same-size, same-mtime
 *    file is read only when its extents moved or lie on a changed block; elsewhere (btrfs: FIEMAP
 *    gives btrfs-internal addresses) it is a metadata walk, said once per filesystem.
 * 5. Changes are handed to `onChange` as found (streaming); the summary has the notes, the
 *    figures and what the reads cost (from the daemons' status: blocks fetched, requests).
 * Everything mounted is undone at the end, also on failure or interruption.
 */
import type { EbsApi } from '../ebs/api.js';
import { BLOCK_SIZE } from '../ebs/constants.js';
import { EbsError, Reason } from '../ebs/errors.js';
import { requestCounts, estimateCostUsd } from '../mount/status-format.js';
import { listChangedBlocks, type ChangedBlocks } from './changed-blocks.js';
import type { Extent } from './extents.js';
import { describeDiffError } from './run-block-diff.js';
import { openDiffMount, type DiffMount, type MountedFilesystem } from './snapshot-filesystems.js';
import { diffTrees, type TreeChange, type TreeDiffStats } from './tree-diff.js';

export interface FileDiffOptions {
  api: EbsApi;
  snapA: string;
  snapB: string;
  endpoint?: string;
  awsArgs: string[];
  prefix?: string;
  partition?: number;
  content?: boolean;
  signal?: AbortSignal;
  onChange: (change: TreeChange, partition: number | undefined) => void | Promise<void>;
  onNote?: (note: string) => void;
  /** Called as the walk goes: the partition being walked and the entries walked so far. */
  onProgress?: (partition: string, entries: number, changes: number) => void;
}

export interface FetchFigures {
  blocksFetched: number;
  bytesFetched: number;
  getRequests: number;
  listRequests: number;
  costUsd: number;
}

export interface FileDiffSummary {
  changes: number;
  byStatus: Record<string, number>;
  notes: string[];
  changedBlocks: number | null;
  volumeSizeGiB: number;
  filesystems: { partition?: number; type: string; uuidA?: string; uuidB?: string; compared: 'extents' | 'metadata' | 'no'; reason?: string }[];
  walk: TreeDiffStats;
  fetched: { a: FetchFigures; b: FetchFigures; total: FetchFigures };
}

const MAPPABLE = new Set(['ext2', 'ext3', 'ext4', 'xfs']);

function figures(stats: Record<string, number> | undefined, listChanged = 0): FetchFigures {
  const s = stats ?? {};
  const req = requestCounts(s);
  req.list += listChanged;
  const blocks = s['blocks.fetched'] ?? 0;
  return { blocksFetched: blocks, bytesFetched: blocks * BLOCK_SIZE, getRequests: req.get, listRequests: req.list, costUsd: estimateCostUsd(req).total };
}

function sum(a: FetchFigures, b: FetchFigures): FetchFigures {
  return {
    blocksFetched: a.blocksFetched + b.blocksFetched,
    bytesFetched: a.bytesFetched + b.bytesFetched,
    getRequests: a.getRequests + b.getRequests,
    listRequests: a.listRequests + b.listRequests,
    costUsd: a.costUsd + b.costUsd,
  };
}

/** Does any extent of a filesystem starting at `startBytes` on the disk lie on a changed block? */
export function extentOverlap(changed: ChangedBlocks, startBytes: number): (ext: Extent[]) => boolean {
  return (ext) =>
    ext.some((e) => {
      const first = Math.floor((startBytes + e.physical) / BLOCK_SIZE);
      const last = Math.floor((startBytes + e.physical + Math.max(1, e.length) - 1) / BLOCK_SIZE);
      return changed.overlaps(first, last);
    });
}

export async function runFileDiff(o: FileDiffOptions): Promise<FileDiffSummary> {
  const notes: string[] = [];
  const note = (n: string) => {
    notes.push(n);
    o.onNote?.(n);
  };
  const ctx = { snapA: o.snapA, snapB: o.snapB, endpoint: o.endpoint };
  let changed: ChangedBlocks | undefined;
  let listChanged = 0;
  try {
    const l = await listChangedBlocks(o.api, o.snapA, o.snapB, { signal: o.signal });
    changed = l.blocks;
    listChanged = l.listRequests;
  } catch (err) {
    if (!(err instanceof EbsError && err.reason === Reason.UNRELATED_SNAPSHOTS)) throw describeDiffError(err, ctx);
    note(`${o.snapA} and ${o.snapB} are not of one lineage: EBS cannot list their changed blocks, so every file of unchanged size is compared by content`);
  }

  const walk: TreeDiffStats = { entries: 0, filesRead: 0, bytesRead: 0, extentChecks: 0 };
  const byStatus: Record<string, number> = {};
  const fsRows: FileDiffSummary['filesystems'] = [];
  let changes = 0;
  let stats: { a?: Record<string, number>; b?: Record<string, number> } = {};
  let volumeSizeGiB = 0;
  let mounted: DiffMount | undefined;
  if (o.snapA === o.snapB) note('the same snapshot twice: nothing to compare');
  try {
    if (o.snapA !== o.snapB) {
      try {
        mounted = await openDiffMount(o.snapA, o.snapB, { awsArgs: o.awsArgs, partition: o.partition });
      } catch (err) {
        throw describeDiffError(err, ctx);
      }
      o.signal?.throwIfAborted();
    }
    const A = mounted?.a ?? { filesystems: [] as MountedFilesystem[] };
    const B = mounted?.b ?? { filesystems: [] as MountedFilesystem[] };
    volumeSizeGiB = mounted?.b.volumeSizeGiB ?? 0;
    const key = (f: MountedFilesystem) => f.partition ?? 0;
    const inB = new Map(B.filesystems.map((f) => [key(f), f]));
    const inA = new Map(A.filesystems.map((f) => [key(f), f]));
    const name = (f: MountedFilesystem) => (f.partition === undefined ? 'the whole disk' : `p${f.partition}`);
    for (const f of A.filesystems) if (!inB.has(key(f))) note(`${name(f)}: only in ${o.snapA} (the partition table changed): not compared`);
    for (const f of B.filesystems) if (!inA.has(key(f))) note(`${name(f)}: only in ${o.snapB} (the partition table changed): not compared`);
    if (mounted && o.partition !== undefined && !inA.has(o.partition) && !inB.has(o.partition)) note(`no partition ${o.partition} on either snapshot`);

    for (const fa of A.filesystems) {
      const fb = inB.get(key(fa));
      if (!fb) continue;
      const label = fa.partition === undefined ? 'disk' : `p${fa.partition}`;
      const row: FileDiffSummary['filesystems'][number] = {
        ...(fa.partition !== undefined ? { partition: fa.partition } : {}),
        type: fb.filesystem.type,
        uuidA: fa.filesystem.uuid,
        uuidB: fb.filesystem.uuid,
        compared: 'no',
      };
      fsRows.push(row);
      if (!fa.root || !fb.root) {
        row.reason = fa.skip ?? fb.skip ?? 'not mounted';
        note(`${label}: ${fa.filesystem.type}/${fb.filesystem.type}: ${row.reason}`);
        continue;
      }
      if (fa.filesystem.type !== fb.filesystem.type) {
        note(`${label}: the filesystem changed from ${fa.filesystem.type} to ${fb.filesystem.type}: compared by metadata and content`);
      } else if (fa.filesystem.uuid !== fb.filesystem.uuid) {
        note(`${label}: filesystem UUID ${fa.filesystem.uuid} in ${o.snapA}, ${fb.filesystem.uuid} in ${o.snapB} (recreated?): compared anyway`);
      }
      let dataChanged: ((ext: Extent[]) => boolean) | undefined;
      if (MAPPABLE.has(fa.filesystem.type) && fa.filesystem.type === fb.filesystem.type && fa.startBytes === fb.startBytes) {
        dataChanged = changed ? extentOverlap(changed, fb.startBytes) : () => true;
        row.compared = 'extents';
      } else {
        row.compared = 'metadata';
        note(`${label}: ${fb.filesystem.type}: extents cannot be mapped to disk offsets (FIEMAP gives ${fb.filesystem.type === 'btrfs' ? 'btrfs-internal addresses' : 'no disk offsets here'}): metadata walk only — a change that kept a file's size and mtime is not seen`);
      }
      const ticker = setInterval(() => o.onProgress?.(label, walk.entries ?? 0, changes), 250);
      try {
        for await (const c of diffTrees({
          rootA: fa.root,
          rootB: fb.root,
          prefix: o.prefix,
          dataChanged,
          content: o.content,
          stats: walk,
          signal: o.signal,
          onNote: (n) => note(`${label}: ${n}`),
        })) {
          o.signal?.throwIfAborted();
          changes++;
          byStatus[c.status] = (byStatus[c.status] ?? 0) + 1;
          await o.onChange(c, fa.partition);
        }
      } finally {
        clearInterval(ticker);
      }
    }
    if (mounted) stats = await mounted.status();
  } finally {
    if (mounted) for (const f of await mounted.close()) note(f);
  }
  const a = figures(stats.a, listChanged);
  const b = figures(stats.b);
  return {
    changes,
    byStatus,
    notes,
    changedBlocks: changed ? changed.size : null,
    volumeSizeGiB,
    filesystems: fsRows,
    walk,
    fetched: { a, b, total: sum(a, b) },
  };
}
