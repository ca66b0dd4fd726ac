/**
 * What `ebsmount browse` prints and `ebsmount status` shows for a browse: one line per
 * partition — filesystem, label, size, and where it is mounted or why not. Pure.
 */
import { formatBytes } from '../util/format.js';
import type { BrowseRecord } from './browse-record.js';
import { table } from './report-format.js';

export function formatBrowse(rec: BrowseRecord, opts: { live?: Set<string> } = {}): string {
  const head = `${rec.snapshotId} at ${rec.dir} (${rec.replay ? 'journals replayed into scratch, nothing committed' : 'read-only'}; partition files in ${rec.fuseMountpoint}; log: ${rec.log})`;
  const rows = [['part', 'filesystem', 'label', 'size', 'mounted at']];
  for (const t of rec.targets) {
    const where = t.mounted && t.mountpoint
      ? `${t.mountpoint}${opts.live && !opts.live.has(t.mountpoint) ? ' (no longer mounted)' : ''}`
      : `not mounted: ${t.reason ?? 'unknown reason'} (file: ${rec.fuseMountpoint}/${t.fileName})`;
    rows.push([t.label, t.fsType, t.fsLabel ?? '', formatBytes(t.sizeBytes), where]);
  }
  const lines = [head];
  if (rec.targets.length) lines.push(table(rows));
  else lines.push('no partition to mount');
  for (const n of rec.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}
