/**
 * How `ebsmount diff --files` prints a change: one line per difference, tab-separated like
 * `git diff --name-status` with the partition added —
 *   STATUS <TAB> PARTITION <TAB> PATH [<TAB> DETAILS]
 * e.g. `M	p1	/etc/hosts	size 120 → 158`, `M	p1	/usr/bin/ls	content, timestamps unchanged`.
 * PARTITION is `pN`, or `disk` for a disk without a partition table. A path holding a tab, a
 * newline, a backslash, a double quote or another control character is quoted with C escapes, as
 * git does. Pure.
 */
import { GIB } from '../ebs/constants.js';
import { formatBytes } from '../util/format.js';
import { usd } from './block-report.js';
import type { FileDiffSummary } from './run-file-diff.js';
import type { TreeChange } from './tree-diff.js';

export function quotePath(p: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[\u0000-\u001f\u007f"\\]/.test(p)) return p;
  const esc: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r', '"': '\\"', '\\': '\\\\' };
  let out = '';
  for (const ch of p) {
    const code = ch.charCodeAt(0);
    if (esc[ch]) out += esc[ch];
    else if (code < 0x20 || code === 0x7f) out += `\\${code.toString(8).padStart(3, '0')}`;
    else out += ch;
  }
  return `"${out}"`;
}

export function partitionLabel(number: number | undefined): string {
  return number === undefined ? 'disk' : `p${number}`;
}

export function formatChange(c: TreeChange, partition: string): string {
  const cols = [c.status, partition, quotePath(c.path)];
  if (c.details.length) cols.push(c.details.join(', '));
  return cols.join('\t');
}

/** The JSON object of one change. */
export function changeJson(c: TreeChange, partition: string): Record<string, unknown> {
  return {
    status: c.status,
    partition,
    path: c.path,
    ...(c.typeA ? { typeA: c.typeA } : {}),
    ...(c.typeB ? { typeB: c.typeB } : {}),
    details: c.details,
    ...(c.timestampsUnchanged ? { timestampsUnchanged: true } : {}),
    ...(c.sha256 ? { sha256: c.sha256 } : {}),
  };
}

/** The summary `diff --files` prints after the changes (stderr): counts, filesystems, what it cost. */
export function formatFilesSummary(snapA: string, snapB: string, s: FileDiffSummary): string {
  const order = ['A', 'D', 'M', 'T', 'm'];
  const counts = order.filter((k) => s.byStatus[k]).map((k) => `${k} ${s.byStatus[k]}`).join(', ');
  const fss = s.filesystems
    .map((f) => `${partitionLabel(f.partition)} ${f.type} (${f.compared === 'extents' ? 'extents checked' : f.compared === 'metadata' ? 'metadata walk' : 'not compared'})`)
    .join(', ');
  const t = s.fetched.total;
  const volume = s.volumeSizeGiB * GIB;
  const share = volume > 0 ? ` = ${((100 * t.bytesFetched) / volume).toFixed(2)} % of the ${s.volumeSizeGiB} GiB volume` : '';
  const lines = [
    `ebsmount diff --files ${snapA} → ${snapB}: ${s.changes} difference${s.changes === 1 ? '' : 's'}${counts ? ` (${counts})` : ''}` +
      `${fss ? ` in ${fss}` : ''}${s.changedBlocks !== null ? `; ${s.changedBlocks} changed blocks` : ''}`,
    `read ${s.walk.filesRead} file${s.walk.filesRead === 1 ? '' : 's'} (${formatBytes(s.walk.bytesRead)}) to compare content; extents of ${s.walk.extentChecks} checked`,
    `fetched ${t.blocksFetched} blocks (${formatBytes(t.bytesFetched)}${share}) in ${t.getRequests} GetSnapshotBlock and ${t.listRequests} list requests: ` +
      `${usd(t.costUsd)} at list prices`,
  ];
  return lines.join('\n') + '\n';
}
