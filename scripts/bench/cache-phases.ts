/**
 * Bench phases of the disk cache and lineage sharing (issue #13), beside phases.ts and sharing
 * its context:
 * - (g) remount: the first GiB of the random snapshot read through `--disk-cache`, then a fresh
 *   mount reads it again with the page cache dropped and an empty memory cache: GetSnapshotBlock
 *   requests (must be 0) and the rate, beside a plain local file's cold read of the same GiB.
 * - (h) lineage: a child of the random snapshot with `changedBlocks` blocks rewritten (import
 *   --parent) is mounted with the same cache: the requests its first GiB costs, beside the blocks
 *   changed there.
 * - (i) opening a disk cache holding 1,000,000 block entries (index rows; no block files are
 *   needed for that), page cache dropped, in a fresh process.
 * Results go to `results.cache`; `cacheTable` renders them and `cacheTargets` judges them.
 */
import { copyFile, mkdir, open, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../src/ebs/constants.js';
import { DiskCacheIndex } from '../../src/store/disk-cache-index.js';
import { DiskCache } from '../../src/store/disk-cache.js';
import type { BenchContext } from './phases.js';
import type { BenchResults } from './results.js';
import type { TargetResult } from './targets.js';
import { ddRead } from './dd.js';
import { run } from './exec.js';
import { counterValue } from './stats.js';
import { MIB } from './settings.js';
import { dropPageCache } from './system.js';
import { prng } from '../../src/util/prng.js';

export interface CacheBenchResults {
  remount?: {
    bytes: number;
    fillMbps: number;
    mbps: number;
    getRequests?: number;
    diskHits?: number;
    localColdMbps: number;
  };
  lineage?: {
    changedBlocks: number;
    readBlocks: number;
    getRequests?: number;
    lineageHits?: number;
    mbps: number;
  };
  open1m?: { entries: number; buildSeconds: number; openMs: number[]; openMsMedian: number };
}

const TIMEOUT_MS = 15 * 60_000;

export class CachePhases {
  constructor(private readonly ctx: BenchContext) {}

  private get out(): CacheBenchResults {
    const r = this.ctx.results as BenchResults & { cache?: CacheBenchResults };
    r.cache ??= {};
    return r.cache;
  }

  private get readMiB(): number {
    return Math.min(1024, this.ctx.settings.imageBytes / MIB);
  }

  private get cacheDir(): string {
    return join(this.ctx.work, 'disk-cache');
  }

  private async endpoint(): Promise<string> {
    const s = this.ctx.settings;
    const cur = this.ctx.server.current;
    if (cur && cur.latencyMs === s.workloadLatencyMs) return this.ctx.server.endpoint;
    return this.ctx.server.start({ latencyMs: s.workloadLatencyMs, jitterMs: s.jitterMs, rateLimit: s.rateLimit });
  }

  private async mount(snapshotId: string, name: string, endpoint: string) {
    const s = this.ctx.settings;
    const mnt = join(this.ctx.work, name);
    await mkdir(mnt, { recursive: true });
    return this.ctx.cli.mount(snapshotId, mnt, endpoint, {
      cacheBytes: s.cacheBytes, readAheadBytes: s.readAheadBytes, maxConcurrency: s.maxConcurrency, requestRate: s.requestRate,
      extraArgs: ['--disk-cache', this.cacheDir, '--disk-cache-size', '10G'],
    });
  }

  async remount(): Promise<void> {
    const snap = this.ctx.results.setup.snapshotId;
    if (!snap) throw new Error('no snapshot: setup failed');
    const endpoint = await this.endpoint();
    await rm(this.cacheDir, { recursive: true, force: true });
    const first = await this.mount(snap, 'mnt-dc-fill', endpoint);
    let fillMbps: number;
    try {
      await dropPageCache();
      // A little past the GiB, so the later reads' read-ahead finds its blocks cached too.
      fillMbps = (await ddRead(first.file, { timeoutMs: TIMEOUT_MS, countMiB: Math.min(this.readMiB + 64, this.ctx.settings.imageBytes / MIB) })).mbps;
    } finally {
      await first.unmount();
    }
    await dropPageCache();
    const local = await ddRead(join(this.ctx.work, 'random.img'), { timeoutMs: TIMEOUT_MS, countMiB: this.readMiB });
    const second = await this.mount(snap, 'mnt-dc-remount', endpoint);
    try {
      await dropPageCache();
      const t = await ddRead(second.file, { timeoutMs: TIMEOUT_MS, countMiB: this.readMiB });
      const st = await this.ctx.cli.status(second.mountpoint);
      this.out.remount = {
        bytes: t.bytes, fillMbps, mbps: t.mbps, localColdMbps: local.mbps,
        getRequests: counterValue(st, 'ebs.get.requests'), diskHits: counterValue(st, 'disk.hit'),
      };
      this.ctx.log(`disk-cache remount: ${t.mbps.toFixed(1)} MB/s (local file cold ${local.mbps.toFixed(1)}), ${this.out.remount.getRequests} GetSnapshotBlock, ${this.out.remount.diskHits} disk hits; fill ${fillMbps.toFixed(1)} MB/s`);
    } finally {
      await second.unmount();
    }
  }

  async lineage(): Promise<void> {
    const snap = this.ctx.results.setup.snapshotId;
    if (!snap) throw new Error('no snapshot: setup failed');
    const endpoint = await this.endpoint();
    const readBlocks = (this.readMiB * MIB) / BLOCK_SIZE;
    const changed = Math.min(200, Math.floor(readBlocks / 4));
    // Distinct blocks inside the GiB the parent's mount read.
    const rand = prng(13);
    const indexes = new Set<number>();
    while (indexes.size < changed) indexes.add(Math.floor(rand() * readBlocks));
    const childImage = join(this.ctx.work, 'child.img');
    await copyFile(join(this.ctx.work, 'random.img'), childImage);
    const fh = await open(childImage, 'r+');
    try {
      for (const i of indexes) await fh.write(randomBytes(BLOCK_SIZE), 0, BLOCK_SIZE, i * BLOCK_SIZE);
    } finally {
      await fh.close();
    }
    const r = await this.ctx.cli.cli(['import', childImage, '--parent', snap, '--endpoint', endpoint], { timeoutMs: TIMEOUT_MS });
    await rm(childImage, { force: true });
    const child = /snap-[0-9a-f]+/.exec(r.stdout)?.[0];
    if (!child) throw new Error(`import --parent printed no snapshot id: ${r.stdout.slice(-200)}`);
    const m = await this.mount(child, 'mnt-dc-child', endpoint);
    try {
      await dropPageCache();
      const t = await ddRead(m.file, { timeoutMs: TIMEOUT_MS, countMiB: this.readMiB });
      const st = await this.ctx.cli.status(m.mountpoint);
      this.out.lineage = {
        changedBlocks: changed, readBlocks, mbps: t.mbps,
        getRequests: counterValue(st, 'ebs.get.requests'), lineageHits: counterValue(st, 'lineage.hit'),
      };
      this.ctx.log(`lineage child: ${this.out.lineage.getRequests} GetSnapshotBlock for ${changed} changed blocks; ${this.out.lineage.lineageHits} lineage hits; ${t.mbps.toFixed(1)} MB/s`);
    } finally {
      await m.unmount();
    }
  }

  async open1m(): Promise<void> {
    const entries = this.ctx.settings.quick ? 100_000 : 1_000_000;
    const dir = join(this.ctx.work, 'disk-cache-1m');
    await rm(dir, { recursive: true, force: true });
    const t0 = performance.now();
    DiskCache.open({ dir }).close();
    const index = new DiskCacheIndex(join(dir, 'index.sqlite'));
    try {
      const now = Date.now();
      const snaps = Array.from({ length: 10 }, (_, k) => index.write(() => index.snapshotKey(`snap-${String(k).padStart(17, '0')}`, 1024, now)));
      const per = 50_000;
      for (let done = 0; done < entries; done += per) {
        index.write(() => {
          for (let k = done; k < Math.min(entries, done + per); k++) {
            const hash = Buffer.alloc(32);
            hash.writeUInt32LE(k, 0);
            hash.writeUInt32LE((0x9e3779b9 ^ k) >>> 0, 4);
            const id = index.insertBlob(hash, BLOCK_SIZE, now + k, process.pid);
            index.markReady(id);
            index.setBlock(snaps[k % snaps.length]!, Math.floor(k / snaps.length), id);
          }
          index.addBytes(Math.min(per, entries - done) * BLOCK_SIZE);
        });
      }
      index.db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      index.close();
    }
    const buildSeconds = (performance.now() - t0) / 1000;
    // Timed in a fresh process after dropping the page cache: module load excluded, open + a lookup + close included.
    const script = `
      const { DiskCache } = await import(${JSON.stringify(join(this.ctx.repoRoot, 'dist/src/store/disk-cache.js'))});
      const t0 = performance.now();
      const c = DiskCache.open({ dir: ${JSON.stringify(dir)} });
      const key = c.findSnapshotKey('snap-00000000000000003');
      const has = c.has(key, 12345);
      const bytes = c.storedBytes;
      c.close();
      process.stdout.write(JSON.stringify({ ms: performance.now() - t0, has, bytes }));`;
    const openMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      await dropPageCache();
      const res = await run(process.execPath, ['--input-type=module', '-e', script], { timeoutMs: 120_000 });
      const doc = JSON.parse(res.stdout) as { ms: number; has: boolean; bytes: number };
      if (!doc.has || doc.bytes !== entries * BLOCK_SIZE) throw new Error(`the 1M-entry cache did not answer as built: ${res.stdout}`);
      openMs.push(doc.ms);
    }
    const sorted = [...openMs].sort((a, b) => a - b);
    this.out.open1m = { entries, buildSeconds, openMs, openMsMedian: sorted[1]! };
    this.ctx.log(`disk cache of ${entries} entries: opened in ${openMs.map((x) => x.toFixed(0)).join(', ')} ms (built in ${buildSeconds.toFixed(1)} s)`);
    await rm(dir, { recursive: true, force: true });
  }
}

function n(x: number | undefined, digits = 1): string {
  return x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
}

/** The "Disk cache and lineage" table, when any of its phases ran. */
export function cacheTable(r: BenchResults): { title: string; headers: string[]; rows: string[][] } | undefined {
  const c = (r as BenchResults & { cache?: CacheBenchResults }).cache;
  if (!c || (!c.remount && !c.lineage && !c.open1m)) return undefined;
  const rows: string[][] = [];
  if (c.remount) {
    rows.push([
      `Remount, first ${Math.round(c.remount.bytes / MIB)} MiB read again from --disk-cache (page cache dropped, memory cache empty)`,
      `${n(c.remount.mbps)} MB/s`,
      `${c.remount.getRequests ?? 'n/a'} GetSnapshotBlock, ${c.remount.diskHits ?? 'n/a'} disk hits; local file cold ${n(c.remount.localColdMbps)} MB/s; the read that filled it ${n(c.remount.fillMbps)} MB/s`,
    ]);
  }
  if (c.lineage) {
    rows.push([
      `Child of the read snapshot, ${c.lineage.changedBlocks} blocks changed, first ${(c.lineage.readBlocks * BLOCK_SIZE) / MIB} MiB read`,
      `${c.lineage.getRequests ?? 'n/a'} requests`,
      `${c.lineage.lineageHits ?? 'n/a'} lineage hits; ${n(c.lineage.mbps)} MB/s`,
    ]);
  }
  if (c.open1m) {
    rows.push([
      `Opening a disk cache of ${c.open1m.entries.toLocaleString('en-US')} block entries`,
      `${n(c.open1m.openMsMedian, 0)} ms`,
      `median of 3 (${c.open1m.openMs.map((x) => x.toFixed(0)).join(', ')} ms), page cache dropped, fresh process`,
    ]);
  }
  return { title: 'Disk cache and lineage', headers: ['Workload', 'Result', 'Details'], rows };
}

export function cacheTargets(r: BenchResults): TargetResult[] {
  const c = (r as BenchResults & { cache?: CacheBenchResults }).cache ?? {};
  const out: TargetResult[] = [];
  const rm = c.remount;
  const ok = (v: boolean, ...inputs: (number | undefined)[]): boolean | null => (inputs.every((x) => x !== undefined && Number.isFinite(x)) ? v : null);
  out.push({
    id: 'disk-cache-remount-requests',
    description: 'Remount through --disk-cache: cold re-read of the first GiB makes 0 GetSnapshotBlock',
    measured: `${rm?.getRequests ?? 'n/a'}`,
    required: '0',
    pass: ok(rm?.getRequests === 0, rm?.getRequests),
  });
  out.push({
    id: 'disk-cache-remount-rate',
    description: 'Remount through --disk-cache: cold re-read ≥ 80 % of a local file\'s cold read',
    measured: `${n(rm?.mbps)} MB/s = ${n(rm ? (100 * rm.mbps) / rm.localColdMbps : undefined, 0)} % of ${n(rm?.localColdMbps)}`,
    required: `≥ ${n(rm ? rm.localColdMbps * 0.8 : undefined)} MB/s`,
    pass: ok((rm?.mbps ?? 0) >= (rm?.localColdMbps ?? Infinity) * 0.8, rm?.mbps, rm?.localColdMbps),
  });
  const l = c.lineage;
  out.push({
    id: 'lineage-requests',
    description: 'Child of a read snapshot: requests = blocks changed (± 1 %)',
    measured: `${l?.getRequests ?? 'n/a'} for ${l?.changedBlocks ?? 'n/a'} changed`,
    required: l ? `${Math.ceil(l.changedBlocks * 0.99)}–${Math.floor(l.changedBlocks * 1.01)}` : 'n/a',
    pass: ok(l !== undefined && l.getRequests !== undefined && Math.abs(l.getRequests - l.changedBlocks) <= l.changedBlocks * 0.01, l?.getRequests),
  });
  const o = c.open1m;
  out.push({
    id: 'disk-cache-open',
    description: `Opening a disk cache of ${o ? o.entries.toLocaleString('en-US') : '1,000,000'} entries < 1 s`,
    measured: `${n(o?.openMsMedian, 0)} ms`,
    required: '< 1000 ms',
    pass: ok((o?.openMsMedian ?? Infinity) < 1000, o?.openMsMedian),
  });
  return out;
}
