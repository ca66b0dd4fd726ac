/**
 * What `ebsmount status` prints: request counts, their estimated cost at list prices
 * (DESIGN §1: $0.003 per 1,000 blocks read, $0.006 per 1,000 written, $0.0006 per 1,000 list
 * calls), and a two-column table per mount. Pure functions.
 */
import type { MountStatus } from './control-protocol.js';
import { formatBytes } from '../util/format.js';

export const PRICE_PER_1000 = { get: 0.003, put: 0.006, list: 0.0006 } as const;

export interface RequestCounts {
  get: number;
  list: number;
  put: number;
}

export function requestCounts(stats: Record<string, number>): RequestCounts {
  const n = (k: string) => stats[k] ?? 0;
  return {
    get: n('ebs.get.requests'),
    list: n('ebs.list.requests') + n('ebs.changed.requests'),
    put: n('ebs.put.requests'),
  };
}

export function estimateCostUsd(r: RequestCounts): { get: number; list: number; put: number; total: number } {
  const get = (r.get / 1000) * PRICE_PER_1000.get;
  const list = (r.list / 1000) * PRICE_PER_1000.list;
  const put = (r.put / 1000) * PRICE_PER_1000.put;
  return { get, list, put, total: get + list + put };
}

/**
 * GetSnapshotBlock requests the local layers made unnecessary: blocks served from the disk cache
 * or from a lineage base's local copy (memory hits are not counted: any mount has those), and
 * what they would have cost at list prices.
 */
export function savings(stats: Record<string, number>): { memoryHits: number; diskHits: number; lineageHits: number; requestsAvoided: number; savedUsd: number } {
  const n = (k: string) => stats[k] ?? 0;
  const requestsAvoided = n('disk.hit') + n('lineage.hit');
  return {
    memoryHits: n('cache.hit'),
    diskHits: n('disk.hit'),
    lineageHits: n('lineage.hit'),
    requestsAvoided,
    savedUsd: (requestsAvoided / 1000) * PRICE_PER_1000.get,
  };
}

/** The JSON `ebsmount status --json` prints for one mount. */
export function statusJson(
  s: MountStatus,
): MountStatus & { requests: RequestCounts; estimatedCostUsd: ReturnType<typeof estimateCostUsd>; savings: ReturnType<typeof savings> } {
  const requests = requestCounts(s.stats);
  return { ...s, requests, estimatedCostUsd: estimateCostUsd(requests), savings: savings(s.stats) };
}


export function formatDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m ${s}s`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function usd(x: number): string {
  return x < 0.01 && x > 0 ? `$${x.toFixed(6)}` : `$${x.toFixed(4)}`;
}

/** Disk cache, lineage and savings rows: only for mounts that use them. */
function localRows(s: MountStatus): [string, string][] {
  if (!s.diskCache && !s.lineage && !s.images?.length) return [];
  const sv = savings(s.stats);
  const rows: [string, string][] = [];
  if (s.diskCache) {
    rows.push([
      'disk cache',
      `${sv.diskHits} hits, ${s.stats['disk.miss'] ?? 0} misses, ${s.stats['disk.corrupt'] ?? 0} corrupt entries dropped; ${formatBytes(s.diskCache.storedBytes)} of ${formatBytes(s.diskCache.sizeBytes)} in ${s.diskCache.dir}`,
    ]);
  }
  if (!s.images?.length) {
    rows.push(['lineage', s.lineage ? `base ${s.lineage.base}: ${sv.lineageHits} hits, ${s.lineage.changedBlocks} blocks changed${s.lineage.complete ? '' : ' (listing)'}` : 'no base']);
  }
  rows.push(['requests avoided', `${sv.requestsAvoided} (memory hits ${sv.memoryHits}, disk ${sv.diskHits}, lineage ${sv.lineageHits}); saved ${usd(sv.savedUsd)} at list prices`]);
  return rows;
}

export function formatStatusTable(s: MountStatus): string {
  const st = (k: string) => s.stats[k] ?? 0;
  const req = requestCounts(s.stats);
  const cost = estimateCostUsd(req);
  const hits = st('cache.hit');
  const misses = st('cache.miss');
  const ratio = hits + misses > 0 ? ` (${((100 * hits) / (hits + misses)).toFixed(1)}% hits)` : '';
  const rows: [string, string][] = [
    ['snapshot', s.images?.length ? s.images.map((im) => im.snapshotId).join(', ') : s.snapshotId],
    ['mountpoint', s.mountpoint],
    ...(s.images?.length
      ? s.images.map((im): [string, string] => [
          'image',
          `${im.imagePath}: ${im.volumeSizeGiB} GiB, ${im.allocatedBlocks} blocks allocated, ${im.stats['ebs.get.requests'] ?? 0} get requests, ` +
            `${im.stats['cache.hit'] ?? 0} memory hits, ${im.stats['disk.hit'] ?? 0} disk hits, ` +
            (im.lineage ? `${im.stats['lineage.hit'] ?? 0} lineage hits from ${im.lineage.base} (${im.lineage.changedBlocks} blocks changed)` : 'no lineage base'),
        ])
      : [['image', s.imagePath] as [string, string]]),
    ...(s.files && s.files.length > 1 ? [['partitions', s.files.filter((f) => f.partition !== undefined).map((f) => f.name).join(' ')] as [string, string]] : []),
    ...(s.partitionTable && s.partitionTable.notes.length ? s.partitionTable.notes.map((n) => ['table note', n] as [string, string]) : []),
    ['volume size', `${s.volumeSizeGiB} GiB`],
    ['allocated', `${s.allocatedBlocks} blocks (${formatBytes(s.allocatedBlocks * 524288)})${s.allocatedBlocksFinal ? '' : ', counting'}`],
    ['mode', `${s.writable ? 'writable' : 'read-only'}${s.allowOther ? ', allow-other' : ''}${s.state !== 'mounted' ? ` (${s.state})` : ''}`],
    ...(s.dirtyBlocks !== null ? [['dirty blocks', `${s.dirtyBlocks} (${formatBytes(s.dirtyBlocks * 524288)})`] as [string, string]] : []),
    ...(s.journal
      ? [['journal', `${s.journal.dir}${s.journal.diskFullErrors > 0
        ? `; DISK FULL: ${s.journal.diskFullErrors} write(s) refused with ENOSPC, last at ${s.journal.lastDiskFull?.at ?? '?'}` : ''}`] as [string, string]]
      : []),
    ['bytes read', formatBytes(st('bytes.read'))],
    ...(s.writable ? [['bytes written', formatBytes(st('bytes.written'))] as [string, string]] : []),
    ['cache', `${hits} hits, ${misses} misses${ratio}; ${formatBytes(s.cachedBytes)} of ${formatBytes(s.cacheSizeBytes)} used`],
    ...localRows(s),
    ['blocks fetched', `${st('blocks.fetched')}`],
    ['prefetch', `${st('prefetch.issued')} issued, ${st('prefetch.hit')} hits`],
    ['retries', `${st('ebs.get.retries') + st('ebs.list.retries')} (throttled ${st('ebs.throttles')}, checksum mismatches ${st('ebs.checksum.mismatch')}, errors ${st('ebs.errors')})`],
    ['requests', `${req.get} get, ${req.list} list, ${req.put} put`],
    ['estimated cost', `${usd(cost.total)} at list prices`],
    ['uptime', formatDuration(s.uptimeSeconds)],
    ['pid', String(s.pid)],
    ['log', s.log ?? '(terminal)'],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}
