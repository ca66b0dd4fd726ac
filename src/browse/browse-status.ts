/**
 * `ebsmount status` with browses: each browse (from its record) with its filesystems and where
 * they are mounted, then every mount as before. With --json the array of mounts is unchanged,
 * except that the mount under a browse carries `browse` (its record). `status DIR` of a browse
 * shows that browse and its snapshot mount.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { readMountinfo } from '../mount/mountinfo.js';
import { MountRegistry } from '../mount/registry.js';
import { collectStatus, runStatus, type StatusArgv } from '../mount/run-status.js';
import { formatStatusTable, statusJson } from '../mount/status-format.js';
import { BrowseRecords } from './browse-record.js';
import { formatBrowse } from './browse-format.js';

export async function runStatusWithBrowses(argv: StatusArgv, records = new BrowseRecords(), registry = new MountRegistry()): Promise<void> {
  const browses = await records.list();
  const live = new Set((await readMountinfo()).map((e) => e.mountpoint));
  const want = argv.mountpoint ? canonical(argv.mountpoint) : undefined;
  const one = want ? browses.find((b) => b.dir === want) : undefined;
  if (want && !one) return runStatus(argv, registry);
  const shown = one ? [one] : browses;
  const mounts = await collectStatus(registry, one?.fuseMountpoint);
  if (argv.json) {
    const docs = mounts.map((m) => ({ ...statusJson(m), browse: browses.find((b) => b.fuseMountpoint === m.mountpoint) }));
    process.stdout.write(JSON.stringify(one ? { browse: one, mount: docs[0] } : docs, null, 2) + '\n');
    return;
  }
  const parts = shown.map((b) => `browse: ${formatBrowse(b, { live })}`);
  parts.push(...mounts.map(formatStatusTable));
  process.stdout.write(parts.length ? parts.join('\n\n') + '\n' : 'no ebsmount mounts\n');
}

function canonical(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}
