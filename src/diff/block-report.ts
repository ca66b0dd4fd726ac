/**
 * What `ebsmount diff SNAP_A SNAP_B` prints: the block-level difference as text or as JSON.
 * Pure formatting; the listing is changed-blocks.ts, the partition figures partition-counts.ts.
 *
 * Text: a summary line (changed blocks, bytes, share of the volume), which side holds data, the
 * merged ranges (block indexes and byte offsets), the changed blocks per partition when the disk
 * has a table, and the requests made with their cost at list prices.
 * JSON: one object; `blocks` lists every changed index with the side holding data ("both", "a":
 * only SNAP_A, "b": only SNAP_B). `jsonChunks` yields it in pieces so a listing of millions of
 * blocks is never one giant string.
 */
import { BLOCK_SIZE, BLOCKS_PER_GIB } from '../ebs/constants.js';
import { estimateCostUsd } from '../mount/status-format.js';
import { formatBytes } from '../util/format.js';
import type { ChangedBlocks } from './changed-blocks.js';
import type { PartitionCounts } from './partition-counts.js';

export interface BlockDiffReport {
  snapA: string;
  snapB: string;
  volumeSizeGiB: number;
  changed: ChangedBlocks;
  /** Absent: the partition table could not be read (see notes) or was not asked for. */
  partitionTable?: { scheme: 'gpt' | 'mbr' | 'none'; readFrom: string; counts?: PartitionCounts };
  notes: string[];
  /** ListChangedBlocks, ListSnapshotBlocks (opening a snapshot to read its table), GetSnapshotBlock. */
  requests: DiffRequests;
}

export interface DiffRequests {
  listChanged: number;
  listBlocks: number;
  get: number;
}

export function costUsd(r: DiffRequests): number {
  return estimateCostUsd({ list: r.listChanged + r.listBlocks, get: r.get, put: 0 }).total;
}

export function usd(x: number): string {
  return x > 0 && x < 0.01 ? `$${x.toFixed(6)}` : `$${x.toFixed(4)}`;
}

function pct(part: number, whole: number): string {
  if (whole === 0) return '0 %';
  const p = (100 * part) / whole;
  return `${p < 0.01 && p > 0 ? '<0.01' : p.toFixed(2)} %`;
}

export function formatBlockDiff(r: BlockDiffReport): string {
  const total = r.volumeSizeGiB * BLOCKS_PER_GIB;
  const c = r.changed;
  const lines: string[] = [];
  lines.push(
    `${r.snapA} → ${r.snapB}: ${c.size} changed block${c.size === 1 ? '' : 's'} (${formatBytes(c.bytes)}) ` +
      `of ${total} in the ${r.volumeSizeGiB} GiB volume (${pct(c.size, total)})`,
  );
  const s = c.sideCounts;
  lines.push(`  data on both sides: ${s.both}; only in ${r.snapA}: ${s.a}; only in ${r.snapB}: ${s.b}`);
  const ranges = c.ranges();
  if (ranges.length > 0) {
    lines.push(`ranges (${ranges.length}, consecutive blocks merged; block size ${BLOCK_SIZE}):`);
    const labels = ranges.map((g) => (g.first === g.last ? String(g.first) : `${g.first}–${g.last}`));
    const w = Math.max(...labels.map((l) => l.length));
    ranges.forEach((g, i) => {
      const n = g.last - g.first + 1;
      lines.push(
        `  ${labels[i]!.padEnd(w)}  ${String(n).padStart(6)} block${n === 1 ? ' ' : 's'}  ${formatBytes(n * BLOCK_SIZE).padStart(10)}` +
          `  bytes ${g.first * BLOCK_SIZE}–${(g.last + 1) * BLOCK_SIZE - 1}`,
      );
    });
  }
  const t = r.partitionTable;
  if (t?.counts && t.counts.partitions.length > 0) {
    lines.push(`partitions (${t.scheme.toUpperCase()} table of ${t.readFrom}):`);
    for (const p of t.counts.partitions) {
      lines.push(
        `  p${String(p.number).padEnd(4)} ${(p.typeName ?? '').padEnd(24)} ${formatBytes(p.sizeBytes).padStart(10)} at ${formatBytes(p.startBytes).padEnd(10)}` +
          `  ${p.changedBlocks} changed block${p.changedBlocks === 1 ? '' : 's'}`,
      );
    }
    lines.push(`  outside any partition: ${t.counts.outside}`);
  } else if (t && t.scheme === 'none') {
    lines.push(`no partition table on ${t.readFrom} (a bare filesystem or an empty disk)`);
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(
    `requests: ${r.requests.listChanged} ListChangedBlocks, ${r.requests.listBlocks} ListSnapshotBlocks, ${r.requests.get} GetSnapshotBlock ` +
      `(${usd(costUsd(r.requests))} at list prices)`,
  );
  return lines.join('\n') + '\n';
}

/** The JSON document, in pieces (every piece a string to write in order). */
export function* jsonChunks(r: BlockDiffReport): Generator<string> {
  const c = r.changed;
  const head = {
    snapshotA: r.snapA,
    snapshotB: r.snapB,
    volumeSizeGiB: r.volumeSizeGiB,
    blockSize: BLOCK_SIZE,
    volumeBlocks: r.volumeSizeGiB * BLOCKS_PER_GIB,
    changedBlocks: c.size,
    changedBytes: c.bytes,
    sides: c.sideCounts,
    ranges: c.ranges(),
    partitionTable: r.partitionTable
      ? {
          scheme: r.partitionTable.scheme,
          readFrom: r.partitionTable.readFrom,
          partitions: r.partitionTable.counts?.partitions ?? [],
          outsideAnyPartition: r.partitionTable.counts?.outside ?? 0,
        }
      : null,
    notes: r.notes,
    requests: r.requests,
    estimatedCostUsd: costUsd(r.requests),
  };
  const text = JSON.stringify(head, null, 2);
  yield text.slice(0, text.lastIndexOf('}')).trimEnd() + ',\n  "blocks": [';
  let buf = '';
  let first = true;
  for (const b of c.entries()) {
    buf += `${first ? '\n' : ',\n'}    {"index":${b.index},"side":"${b.side}"}`;
    first = false;
    if (buf.length > 65_536) {
      yield buf;
      buf = '';
    }
  }
  yield `${buf}${first ? '' : '\n  '}]\n}\n`;
}
