/**
 * The measurements of `npm run bench`, one method per phase, sharing one context: the settings,
 * the work directory, the local server (restarted with the latency each phase needs), the CLI
 * wrapper and the cleanup registry. Each phase fills its part of `results`; main.ts runs them in
 * order, catching a failing phase so the others still run.
 *
 * Every mount is fresh where the issue says cold; "drop page cache" is sync + drop_caches=3.
 */
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../src/ebs/constants.js';
import type { BenchSettings } from './settings.js';
import { MIB } from './settings.js';
import type { Cleanup } from './cleanup.js';
import type { EbsmountCli, Mounted, MountOptions } from './ebsmount-cli.js';
import type { LocalServer, ServerSettings } from './local-server.js';
import type { BenchResults, ColdRead, LatencyRun, RandomRun, WarmRead } from './results.js';
import { ddRead, ddWrite, type Transfer } from './dd.js';
import { run, startBackground, stopProcess } from './exec.js';
import { childrenCpuSeconds, cpuSeconds, dropPageCache, isMountpoint, RssSampler, vmRssBytes } from './system.js';
import { MB, counterValue, mbPerSecond, median, statValue, upstreamCeiling } from './stats.js';
import { planColdReads, runColdRandomReads, type RandomReadResult } from './fio.js';
import { createSparseSnapshot, spreadBlockIndexes } from './sparse-snapshot.js';
import { rawApiCeiling, rawPutCeiling } from './raw-api.js';

const READ_TIMEOUT_MS = 15 * 60_000;

export interface BenchContext {
  settings: BenchSettings;
  work: string;
  repoRoot: string;
  cli: EbsmountCli;
  server: LocalServer;
  cleanup: Cleanup;
  results: BenchResults;
  log: (msg: string) => void;
  /** Extra FUSE mount options for memfuse, to match ebsmount's own. */
  memfuseOptions: string[];
}

function best(runs: Transfer[]): number {
  return Math.max(...runs.map((r) => r.mbps));
}

export class BenchPhases {
  private randomImage = '';
  private ext4Image = '';
  private snapshotId = '';
  private ext4SnapshotId = '';

  constructor(private readonly ctx: BenchContext) {
    this.randomImage = join(ctx.work, 'random.img');
    this.ext4Image = join(ctx.work, 'ext4.img');
  }

  private get s(): BenchSettings {
    return this.ctx.settings;
  }

  /** The random image in MiB: mounted reads stop there (the volume is rounded up to whole GiB). */
  private get imageMiB(): number {
    return this.s.imageBytes / MIB;
  }

  private serverSettings(latencyMs: number, rateLimit = this.s.rateLimit): ServerSettings {
    return { latencyMs, jitterMs: this.s.jitterMs, rateLimit };
  }

  /** (Re)starts the server unless it already runs with these settings. */
  private async serverAt(latencyMs: number, rateLimit = this.s.rateLimit): Promise<string> {
    const cur = this.ctx.server.current;
    if (cur && cur.latencyMs === latencyMs && cur.rateLimit === rateLimit) return this.ctx.server.endpoint;
    const endpoint = await this.ctx.server.start(this.serverSettings(latencyMs, rateLimit));
    this.ctx.log(`server at ${endpoint}: latency ${latencyMs} ms, rate limit ${rateLimit}/s`);
    return endpoint;
  }

  private mountOptions(extra: Partial<MountOptions> = {}): MountOptions {
    return {
      cacheBytes: this.s.cacheBytes,
      readAheadBytes: this.s.readAheadBytes,
      maxConcurrency: this.s.maxConcurrency,
      requestRate: this.s.requestRate,
      ...extra,
    };
  }

  private async freshMount(snapshotId: string, name: string, endpoint: string, extra: Partial<MountOptions> = {}): Promise<Mounted> {
    const mnt = join(this.ctx.work, name);
    await mkdir(mnt, { recursive: true });
    return this.ctx.cli.mount(snapshotId, mnt, endpoint, this.mountOptions(extra));
  }

  private profileArgs(): string[] | undefined {
    if (!this.s.cpuProfile) return undefined;
    return ['--cpu-prof', `--cpu-prof-dir=${join(this.s.outDir, 'profiles')}`];
  }

  private async stats(m: Mounted): Promise<unknown> {
    try {
      return await this.ctx.cli.status(m.mountpoint);
    } catch (err) {
      this.ctx.log(`status --json failed: ${(err as Error).message.split('\n')[0]}`);
      return undefined;
    }
  }

  // ---- setup -------------------------------------------------------------------------------

  async setup(): Promise<void> {
    const s = this.s;
    const { log, work } = this.ctx;
    log(`writing a ${s.imageBytes / MIB} MiB random image`);
    await run('dd', ['if=/dev/urandom', `of=${this.randomImage}`, 'bs=1M', `count=${s.imageBytes / MIB}`, 'iflag=fullblock', 'status=none'], { timeoutMs: 600_000 });

    log(`building an ext4 image holding one ${s.ext4FileBytes / MIB} MiB random file`);
    const tree = join(work, 'ext4-tree');
    await mkdir(tree, { recursive: true });
    await run('dd', ['if=/dev/urandom', `of=${join(tree, 'big.bin')}`, 'bs=1M', `count=${s.ext4FileBytes / MIB}`, 'iflag=fullblock', 'status=none'], { timeoutMs: 600_000 });
    const ext4Bytes = Math.ceil((s.ext4FileBytes * 1.1 + 64 * MIB) / MIB) * MIB;
    await run('truncate', ['-s', String(ext4Bytes), this.ext4Image], { timeoutMs: 10_000 });
    await run('mkfs.ext4', ['-q', '-F', '-L', 'bench', '-d', tree, this.ext4Image], { timeoutMs: 600_000 });
    await rm(tree, { recursive: true, force: true });

    const endpoint = await this.serverAt(0);
    log('importing the random image');
    const imp = await this.ctx.cli.importImage(this.randomImage, endpoint, 1_800_000);
    this.snapshotId = imp.snapshotId;
    log(`  ${imp.snapshotId} in ${(imp.ms / 1000).toFixed(1)} s`);
    log('importing the ext4 image');
    const imp2 = await this.ctx.cli.importImage(this.ext4Image, endpoint, 1_800_000);
    this.ext4SnapshotId = imp2.snapshotId;
    Object.assign(this.ctx.results.setup, { importSeconds: imp.ms / 1000, snapshotId: imp.snapshotId, ext4SnapshotId: imp2.snapshotId });
  }

  private requireSnapshot(): string {
    if (!this.snapshotId) throw new Error('no snapshot: the setup phase failed');
    return this.snapshotId;
  }

  // ---- (a) ceilings -------------------------------------------------------------------------

  async localFile(): Promise<void> {
    await dropPageCache();
    const cold = await ddRead(this.randomImage, { timeoutMs: READ_TIMEOUT_MS });
    const cached = [await ddRead(this.randomImage, { timeoutMs: READ_TIMEOUT_MS }), await ddRead(this.randomImage, { timeoutMs: READ_TIMEOUT_MS })];
    Object.assign(this.ctx.results.ceilings, { localColdMbps: cold.mbps, localPageCacheMbps: best(cached) });
    this.ctx.log(`local file: cold ${cold.mbps.toFixed(1)} MB/s, page cache ${best(cached).toFixed(1)} MB/s`);
  }

  /** Runs `body` with a memfuse mount of the image's size; unmounts it afterwards. */
  private async withMemfuse(name: string, extraArgs: string[], body: (file: string) => Promise<void>): Promise<void> {
    const { work, cleanup, repoRoot } = this.ctx;
    const mnt = join(work, name);
    await mkdir(mnt, { recursive: true });
    const args = [join(repoRoot, 'dist/scripts/bench/memfuse.js'), mnt, String(this.s.imageBytes), ...extraArgs];
    if (this.ctx.memfuseOptions.length) args.push('--options', this.ctx.memfuseOptions.join(','));
    const proc = startBackground(process.execPath, args, { logFile: join(work, `${name}.log`) });
    cleanup.trackPid(proc.child.pid);
    const stop = cleanup.add(name, async () => {
      await stopProcess(proc);
      if (isMountpoint(mnt)) await run('umount', ['-l', mnt], { timeoutMs: 30_000, allowFail: true });
    });
    try {
      const line = await proc.waitForLine(/^ready /, 120_000);
      await body(line.slice('ready '.length));
    } finally {
      await stop();
    }
  }

  async memfuse(): Promise<void> {
    const { log } = this.ctx;
    await this.withMemfuse('memfuse', [], async (file) => {
      await ddRead(file, { timeoutMs: READ_TIMEOUT_MS }); // warm-up: JIT, allocation
      const runs: Transfer[] = [];
      for (let i = 0; i < 2; i++) {
        await dropPageCache();
        runs.push(await ddRead(file, { timeoutMs: READ_TIMEOUT_MS }));
      }
      Object.assign(this.ctx.results.ceilings, { memfuseMbps: best(runs), memfuseRunsMbps: runs.map((r) => r.mbps) });
      log(`memfuse: ${runs.map((r) => r.mbps.toFixed(1)).join(', ')} MB/s`);
    });
  }

  /**
   * Reference for (d): the same cold random-read plans against memfuse with the workload latency
   * added to every read, i.e. what the FUSE path and the tool allow with a perfect daemon.
   */
  async memfuseRandom(): Promise<void> {
    const latencyMs = this.s.workloadLatencyMs;
    await this.withMemfuse('memfuse-latency', ['--latency-ms', String(latencyMs)], async (file) => {
      const out: RandomReadResult[] = [];
      for (const [qd, plan] of this.randomPlans()) {
        out.push(await runColdRandomReads({ file, offsets: plan, queueDepth: qd, scratchDir: await this.fioScratch(), timeoutMs: 600_000 }));
      }
      this.ctx.results.ceilings.memfuseRandom = { latencyMs, qd1: out[0]!, qd32: out[1]! };
      this.ctx.log(`memfuse +${latencyMs} ms: QD1 ${out[0]!.iops.toFixed(0)} IOPS p50 ${out[0]!.p50Ms.toFixed(2)} ms, QD${out[1]!.queueDepth} ${out[1]!.iops.toFixed(0)} IOPS`);
    });
  }

  /** The cold random-read plans of (d): [queue depth, offsets], blocks disjoint between them. */
  private randomPlans(): [number, number[]][] {
    const qd32Reads = this.s.randomQd32Jobs * this.s.randomQd32ReadsPerJob;
    const offsets = planColdReads(this.s.imageBytes, this.s.randomQd1Reads + qd32Reads, 20_241_124);
    return [
      [1, offsets.slice(0, this.s.randomQd1Reads)],
      [this.s.randomQd32Jobs, offsets.slice(this.s.randomQd1Reads)],
    ];
  }

  private async fioScratch(): Promise<string> {
    const dir = join(this.ctx.work, 'fio');
    await mkdir(dir, { recursive: true });
    return dir;
  }

  // ---- (b) cold and warm sequential reads at each latency ------------------------------------

  async sequential(latencyMs: number): Promise<void> {
    const snap = this.requireSnapshot();
    const entry: LatencyRun = {
      latencyMs,
      upstreamCeilingMbps: upstreamCeiling({ rateLimit: this.s.rateLimit, concurrency: this.s.maxConcurrency, latencyMs }) / MB,
    };
    this.ctx.results.sequential.push(entry);
    const endpoint = await this.serverAt(latencyMs);
    // This machine's own ceiling at this latency, measured side by side: the API client alone,
    // through the AWS SDK and through the lean path (the default), one after the other.
    const raw = {
      endpoint, snapshotId: snap, concurrency: this.s.maxConcurrency, latencyMs, serverPid: this.ctx.server.pid,
      blocks: Math.min(this.s.imageBytes / BLOCK_SIZE, this.s.quick ? 256 : 1024),
    };
    entry.rawApiSdk = await rawApiCeiling({ ...raw, client: 'sdk' });
    this.ctx.log(`raw API (SDK) @${latencyMs} ms: ${entry.rawApiSdk.mbps.toFixed(1)} MB/s, client ${entry.rawApiSdk.clientCpuMsPerBlock?.toFixed(3)} ms CPU/block`);
    entry.rawApi = await rawApiCeiling({ ...raw, client: 'lean' });
    this.ctx.log(`raw API (lean) @${latencyMs} ms (${this.s.maxConcurrency} in flight, verified, no FUSE): ${entry.rawApi.mbps.toFixed(1)} MB/s, p50 ${entry.rawApi.p50Ms.toFixed(1)} ms, client ${entry.rawApi.clientCpuMsPerBlock?.toFixed(3)} ms CPU/block, server ${entry.rawApi.serverCpuMsPerBlock?.toFixed(3)} ms/block`);
    entry.cold = await this.coldRead(snap, `mnt-cold-${latencyMs}ms`, endpoint);
    this.ctx.log(`cold @${latencyMs} ms: ${entry.cold.mbps.toFixed(1)} MB/s, ${entry.cold.requestsPerBlock?.toFixed(3) ?? 'n/a'} requests/block, RSS peak ${((entry.cold.rssPeakBytes ?? NaN) / MIB).toFixed(0)} MiB`);
    entry.warm = await this.warmRead(snap, `mnt-warm-${latencyMs}ms`, endpoint);
    this.ctx.log(`warm @${latencyMs} ms: fill ${entry.warm.fillMbps.toFixed(1)}, warm ${entry.warm.runsMbps.map((x) => x.toFixed(1)).join('/')}, page cache ${entry.warm.pageCacheMbps.toFixed(1)} MB/s`);
  }

  private async coldRead(snap: string, name: string, endpoint: string): Promise<ColdRead> {
    const m = await this.freshMount(snap, name, endpoint, { nodeArgs: this.profileArgs() });
    try {
      await dropPageCache();
      const rss = m.daemonPid ? new RssSampler(m.daemonPid) : undefined;
      const cpu0 = m.daemonPid ? cpuSeconds(m.daemonPid) : undefined;
      const scpu0 = this.ctx.server.pid ? cpuSeconds(this.ctx.server.pid) : undefined;
      const t = await ddRead(m.file, { timeoutMs: READ_TIMEOUT_MS, countMiB: this.imageMiB });
      const cpu1 = m.daemonPid ? cpuSeconds(m.daemonPid) : undefined;
      const scpu1 = this.ctx.server.pid ? cpuSeconds(this.ctx.server.pid) : undefined;
      const peak = rss?.stop().peakBytes;
      const stats = await this.stats(m);
      const getRequests = counterValue(stats, 'ebs.get.requests');
      const blocksRead = Math.ceil(t.bytes / BLOCK_SIZE);
      return {
        mbps: t.mbps, seconds: t.seconds, bytes: t.bytes, mountMs: m.mountMs,
        getRequests, blocksFetched: statValue(stats, 'blocks.fetched'), blocksRead,
        requestsPerBlock: getRequests === undefined ? undefined : getRequests / blocksRead,
        rssPeakBytes: peak,
        daemonCpuSeconds: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined,
        serverCpuSeconds: scpu0 !== undefined && scpu1 !== undefined ? scpu1 - scpu0 : undefined,
        stats,
      };
    } finally {
      await m.unmount();
    }
  }

  private async warmRead(snap: string, name: string, endpoint: string): Promise<WarmRead> {
    const m = await this.freshMount(snap, name, endpoint, { cacheBytes: this.s.warmCacheBytes });
    const rss = m.daemonPid ? new RssSampler(m.daemonPid) : undefined;
    try {
      await dropPageCache();
      const whole = { timeoutMs: READ_TIMEOUT_MS, countMiB: this.imageMiB };
      const fill = await ddRead(m.file, whole);
      const runs: Transfer[] = [];
      for (let i = 0; i < 2; i++) {
        await dropPageCache();
        runs.push(await ddRead(m.file, whole));
      }
      const reread = [await ddRead(m.file, whole), await ddRead(m.file, whole)];
      const stats = await this.stats(m);
      return {
        fillMbps: fill.mbps, mbps: best(runs), runsMbps: runs.map((r) => r.mbps), pageCacheMbps: best(reread),
        rssPeakBytes: rss?.stop().peakBytes, cacheBytes: this.s.warmCacheBytes, stats,
      };
    } finally {
      rss?.stop();
      await m.unmount();
    }
  }

  // ---- (c) one large file through ext4 on a loop device ---------------------------------------

  async ext4(): Promise<void> {
    if (!this.ext4SnapshotId) throw new Error('no ext4 snapshot: the setup phase failed');
    const latencyMs = this.s.workloadLatencyMs;
    const endpoint = await this.serverAt(latencyMs);
    const m = await this.freshMount(this.ext4SnapshotId, 'mnt-ext4', endpoint);
    const fsmnt = join(this.ctx.work, 'fs-ext4');
    await mkdir(fsmnt, { recursive: true });
    const unmountFs = this.ctx.cleanup.add(`loop mount ${fsmnt}`, async () => {
      if (isMountpoint(fsmnt)) await run('umount', [fsmnt], { timeoutMs: 60_000 });
      await this.detachLoops(m.file);
    });
    try {
      await run('mount', ['-o', 'ro,loop,noload', m.file, fsmnt], { timeoutMs: 120_000 });
      const file = join(fsmnt, 'big.bin');
      const fileBytes = (await stat(file)).size;
      await dropPageCache();
      const before = counterValue(await this.stats(m), 'ebs.get.requests');
      const t = await ddRead(file, { timeoutMs: READ_TIMEOUT_MS });
      const stats = await this.stats(m);
      const after = counterValue(stats, 'ebs.get.requests');
      const blocksRead = Math.ceil(fileBytes / BLOCK_SIZE);
      const getRequests = before !== undefined && after !== undefined ? after - before : undefined;
      this.ctx.results.ext4 = {
        latencyMs, fileBytes, upstreamCeilingMbps: upstreamCeiling({ rateLimit: this.s.rateLimit, concurrency: this.s.maxConcurrency, latencyMs }) / MB,
        mbps: t.mbps, seconds: t.seconds, bytes: t.bytes, mountMs: m.mountMs, getRequests, blocksRead,
        blocksFetched: statValue(stats, 'blocks.fetched'),
        requestsPerBlock: getRequests === undefined ? undefined : getRequests / blocksRead, stats,
      };
      this.ctx.log(`ext4 file @${latencyMs} ms: ${t.mbps.toFixed(1)} MB/s`);
    } finally {
      await unmountFs();
      await m.unmount();
    }
  }

  /** Detaches loop devices still backed by `file` (mount -o loop normally auto-clears them). */
  private async detachLoops(file: string): Promise<void> {
    const r = await run('losetup', ['-j', file], { timeoutMs: 10_000, allowFail: true });
    for (const dev of r.stdout.split('\n').map((l) => l.split(':')[0]!).filter(Boolean)) {
      await run('losetup', ['-d', dev], { timeoutMs: 10_000, allowFail: true });
    }
  }

  // ---- (d) random 4 KiB reads ----------------------------------------------------------------

  async random(): Promise<void> {
    const snap = this.requireSnapshot();
    const latencyMs = this.s.workloadLatencyMs;
    const endpoint = await this.serverAt(latencyMs);
    this.ctx.results.random = { latencyMs };
    const scratch = await this.fioScratch();
    for (const [qd, plan] of this.randomPlans()) {
      const m = await this.freshMount(snap, `mnt-random-qd${qd}`, endpoint);
      try {
        await dropPageCache();
        const before = counterValue(await this.stats(m), 'ebs.get.requests');
        const r: RandomRun = await runColdRandomReads({ file: m.file, offsets: plan, queueDepth: qd, scratchDir: scratch, timeoutMs: 600_000 });
        const stats = await this.stats(m);
        const after = counterValue(stats, 'ebs.get.requests');
        r.getRequests = before !== undefined && after !== undefined ? after - before : undefined;
        r.requestsPerRead = r.getRequests === undefined ? undefined : r.getRequests / r.reads;
        r.stats = stats;
        if (qd === 1) this.ctx.results.random.qd1 = r;
        else this.ctx.results.random.qd32 = r;
        this.ctx.log(`random QD${qd} @${latencyMs} ms: ${r.iops.toFixed(0)} IOPS, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${r.requestsPerRead?.toFixed(3) ?? 'n/a'} requests/read`);
      } finally {
        await m.unmount();
      }
    }
  }

  // ---- (f) commit of dirty blocks ------------------------------------------------------------

  async commit(uploadConcurrency: number): Promise<void> {
    const snap = this.requireSnapshot();
    const latencyMs = this.s.workloadLatencyMs;
    const endpoint = await this.serverAt(latencyMs);
    // This machine's own ceiling for puts, side by side: the API client alone, no journal.
    const rawApi = await rawPutCeiling({
      endpoint, concurrency: uploadConcurrency, latencyMs, serverPid: this.ctx.server.pid, blocks: Math.min(this.s.commitBytes / BLOCK_SIZE, this.s.quick ? 256 : 1024),
    });
    this.ctx.log(`raw API puts @${latencyMs} ms (${uploadConcurrency} in flight, hashed, no journal): ${rawApi.mbps.toFixed(1)} MB/s, p50 ${rawApi.p50Ms.toFixed(1)} ms, client CPU ${rawApi.clientCpuSeconds.toFixed(2)} s`);
    const m = await this.freshMount(snap, 'mnt-commit', endpoint, { writable: true });
    let write: Transfer;
    try {
      write = await ddWrite('/dev/urandom', m.file, { countMiB: this.s.commitBytes / MIB, timeoutMs: READ_TIMEOUT_MS });
      this.ctx.log(`wrote ${this.s.commitBytes / MIB} MiB into the writable mount at ${write.mbps.toFixed(1)} MB/s`);
    } catch (err) {
      await m.unmount().catch(() => undefined);
      throw err;
    }
    const r = await m.unmount();
    const seconds = r.ms / 1000;
    const ceilingMbps = upstreamCeiling({ rateLimit: this.s.rateLimit, concurrency: uploadConcurrency, latencyMs }) / MB;
    this.ctx.results.commit = {
      latencyMs, bytes: this.s.commitBytes, writeMbps: write.mbps, unmountSeconds: seconds,
      mbps: mbPerSecond(this.s.commitBytes, seconds), ceilingMbps, uploadConcurrency, rawApi,
      childSnapshotId: r.stdout.match(/\bsnap-[0-9a-f]{8,17}\b/)?.[0],
    };
    this.ctx.log(`commit: ${seconds.toFixed(2)} s = ${this.ctx.results.commit.mbps.toFixed(1)} MB/s (ceiling ${ceilingMbps.toFixed(1)}), child ${this.ctx.results.commit.childSnapshotId ?? 'not printed'}`);
  }

  // ---- (g) export: a full-volume download ----------------------------------------------------

  async exportSnapshot(): Promise<void> {
    const snap = this.requireSnapshot();
    const latencyMs = this.s.workloadLatencyMs;
    const endpoint = await this.serverAt(latencyMs);
    const file = join(this.ctx.work, 'export.img');
    const c0 = childrenCpuSeconds();
    const s0 = this.ctx.server.pid ? cpuSeconds(this.ctx.server.pid) : undefined;
    const t0 = performance.now();
    try {
      await this.ctx.cli.cli(['export', snap, file, '--endpoint', endpoint, '--force', '--concurrency', String(this.s.maxConcurrency)], { timeoutMs: READ_TIMEOUT_MS });
      const seconds = (performance.now() - t0) / 1000;
      const c1 = childrenCpuSeconds();
      const s1 = this.ctx.server.pid ? cpuSeconds(this.ctx.server.pid) : undefined;
      const bytes = this.s.imageBytes;
      const blocks = bytes / BLOCK_SIZE;
      const cpu = c0 !== undefined && c1 !== undefined ? c1 - c0 : undefined;
      this.ctx.results.exportRun = {
        latencyMs, bytes, seconds, mbps: mbPerSecond(bytes, seconds), blocks,
        upstreamCeilingMbps: upstreamCeiling({ rateLimit: this.s.rateLimit, concurrency: this.s.maxConcurrency, latencyMs }) / MB,
        cpuSeconds: cpu, cpuMsPerBlock: cpu === undefined ? undefined : (cpu * 1000) / blocks,
        serverCpuSeconds: s0 !== undefined && s1 !== undefined ? s1 - s0 : undefined,
      };
      this.ctx.log(`export @${latencyMs} ms: ${this.ctx.results.exportRun.mbps.toFixed(1)} MB/s, ${this.ctx.results.exportRun.cpuMsPerBlock?.toFixed(3)} ms CPU/block`);
    } finally {
      await rm(file, { force: true });
    }
  }

  // ---- (e) huge sparse snapshot: mount time and memory ---------------------------------------

  async sparse(): Promise<void> {
    const s = this.s;
    const { log } = this.ctx;
    // Building it is setup, not measurement: lift the server's rate limit meanwhile.
    const buildEndpoint = await this.serverAt(0, 1_000_000);
    log(`building a ${s.sparseVolumeGiB} GiB snapshot with ${s.sparseBlocks} blocks (${s.sparsePutConcurrency} puts in flight)`);
    const built = await createSparseSnapshot({
      endpoint: buildEndpoint, volumeGiB: s.sparseVolumeGiB, blocks: s.sparseBlocks, concurrency: s.sparsePutConcurrency,
      onProgress: (done, total) => log(`  ${done}/${total} blocks`),
    });
    log(`  ${built.snapshotId} in ${built.seconds.toFixed(1)} s`);
    const endpoint = await this.serverAt(0);
    const mountMs: number[] = [];
    let rssAfterMountBytes: number | undefined;
    let rssAfterReadsBytes: number | undefined;
    let stats: unknown;
    for (let i = 0; i < s.mountRepeats; i++) {
      const m = await this.freshMount(built.snapshotId, `mnt-sparse-${i}`, endpoint);
      try {
        mountMs.push(m.mountMs);
        log(`sparse mount ${i + 1}: ${m.mountMs.toFixed(0)} ms`);
        if (i > 0) continue;
        await new Promise((r) => setTimeout(r, 2000)); // let any background listing show in RSS
        rssAfterMountBytes = m.daemonPid ? vmRssBytes(m.daemonPid) : undefined;
        await this.scatteredReads(m.file, s.sparseVolumeGiB, s.sparseBlocks, s.sparseScatteredReads);
        rssAfterReadsBytes = m.daemonPid ? vmRssBytes(m.daemonPid) : undefined;
        stats = await this.stats(m);
      } finally {
        await m.unmount();
      }
    }
    this.ctx.results.sparse = {
      volumeGiB: s.sparseVolumeGiB, blocks: s.sparseBlocks, buildSeconds: built.seconds, mountMs,
      mountMsMedian: median(mountMs), rssAfterMountBytes, rssAfterReadsBytes, scatteredReads: s.sparseScatteredReads,
      cacheBytes: s.cacheBytes, stats,
    };
  }

  /**
   * 4 KiB reads at `count` places spread over the whole volume (most in holes, some in written
   * blocks); checks the written ones carry their header, the holes zeros.
   */
  private async scatteredReads(file: string, volumeGiB: number, blocks: number, count: number): Promise<void> {
    const writtenList = spreadBlockIndexes(volumeGiB, blocks);
    const written = new Set(writtenList);
    const places = spreadBlockIndexes(volumeGiB, count).map((b, i) => (i % 2 === 0 ? b : writtenList[Math.floor((i * blocks) / count)]!));
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(4096);
      for (const block of places) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, block * BLOCK_SIZE);
        const text = buf.toString('latin1', 0, 40);
        const ok = written.has(block) ? text.startsWith(`ebsmount-bench sparse block ${block}\n`) : buf.every((b) => b === 0);
        if (bytesRead !== buf.length || !ok) throw new Error(`wrong data at block ${block} of the sparse snapshot (${written.has(block) ? 'written' : 'hole'})`);
      }
    } finally {
      await fh.close();
    }
  }
}
