/**
 * Stats: named counters shared by every layer of one mounted volume (read by `ebsmount status`
 * and the benchmark).
 *
 * Contract: keys are dotted (`cache.hit`, `ebs.get.retries`); a key never set reads as 0;
 * `snapshot()` is a plain object copy, sorted by key, safe to serialise. O(1) per update: this is
 * on the hot read path.
 */
export const StatKey = {
  bytesRead: 'bytes.read',
  bytesWritten: 'bytes.written',
  cacheHit: 'cache.hit',
  cacheMiss: 'cache.miss',
  blocksFetched: 'blocks.fetched',
  blocksZero: 'blocks.zero',
  prefetchIssued: 'prefetch.issued',
  prefetchHit: 'prefetch.hit',
  ebsGetRequests: 'ebs.get.requests',
  ebsGetRetries: 'ebs.get.retries',
  ebsThrottles: 'ebs.throttles',
  ebsChecksumMismatch: 'ebs.checksum.mismatch',
  ebsListRequests: 'ebs.list.requests',
  ebsListRetries: 'ebs.list.retries',
  ebsErrors: 'ebs.errors',
  diskHit: 'disk.hit',
  diskMiss: 'disk.miss',
  diskCorrupt: 'disk.corrupt',
  diskStored: 'disk.stored',
  diskSkipped: 'disk.skipped',
  lineageHit: 'lineage.hit',
} as const;

export class Stats {
  private readonly counters = new Map<string, number>();

  inc(key: string, n = 1): void {
    this.counters.set(key, (this.counters.get(key) ?? 0) + n);
  }

  get(key: string): number {
    return this.counters.get(key) ?? 0;
  }

  set(key: string, v: number): void {
    this.counters.set(key, v);
  }

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const key of [...this.counters.keys()].sort()) out[key] = this.counters.get(key)!;
    return out;
  }
}
