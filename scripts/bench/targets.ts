/**
 * The performance targets of ebsmount, judged from one run's figures (pure).
 * A target whose inputs were not measured gets pass = null ("not measured"), never a PASS.
 */
import type { BenchResults, LatencyRun } from './results.js';
import { cacheTargets } from './cache-phases.js';
import { percentOf } from './stats.js';
import { MIB } from './settings.js';

export interface TargetResult {
  id: string;
  description: string;
  measured: string;
  required: string;
  pass: boolean | null;
}

export interface TargetSettings {
  cacheBytes: number;
  warmCacheBytes: number;
}

const RSS_HEADROOM = 150 * MIB;

function f(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits);
}

function judge(ok: boolean, ...inputs: (number | undefined)[]): boolean | null {
  return inputs.every((v) => v !== undefined && Number.isFinite(v)) ? ok : null;
}

function maxOf(values: (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length ? Math.max(...v) : undefined;
}

/** Warm rate for a latency: the one measured with it, else the best measured at any latency. */
function warmFor(runs: LatencyRun[], run: LatencyRun): number | undefined {
  return run.warm?.mbps ?? maxOf(runs.map((r) => r.warm?.mbps));
}

export function evaluateTargets(r: BenchResults, s: TargetSettings): TargetResult[] {
  const out: TargetResult[] = [];
  const seq = r.sequential;
  const at = (ms: number): LatencyRun | undefined => seq.find((x) => x.latencyMs === ms);

  for (const ms of [20, 100]) {
    const run = at(ms);
    const cold = run?.cold?.mbps;
    const warm = run ? warmFor(seq, run) : undefined;
    const bound = run && warm !== undefined ? Math.min(run.upstreamCeilingMbps, warm) : undefined;
    out.push({
      id: `cold-seq-${ms}ms`,
      description: `Cold sequential read at ${ms} ms ≥ 70 % of min(upstream ceiling, warm)`,
      measured: `${f(cold)} MB/s = ${f(percentOf(cold, bound), 0)} % of ${f(bound)}`,
      required: `≥ ${f(bound === undefined ? undefined : bound * 0.7)} MB/s`,
      pass: judge(cold! >= bound! * 0.7, cold, bound),
    });
  }
  {
    const c0 = at(0)?.cold?.mbps;
    const c100 = at(100)?.cold?.mbps;
    out.push({
      id: 'cold-seq-latency-hidden',
      description: 'Cold sequential read at 100 ms ≥ 90 % of the rate at 0 ms',
      measured: `${f(c100)} MB/s = ${f(percentOf(c100, c0), 0)} % of ${f(c0)}`,
      required: `≥ ${f(c0 === undefined ? undefined : c0 * 0.9)} MB/s`,
      pass: judge(c100! >= c0! * 0.9, c0, c100),
    });
  }
  {
    const pc = maxOf(seq.map((x) => x.warm?.pageCacheMbps));
    const local = r.ceilings.localPageCacheMbps;
    out.push({
      id: 'page-cache-reread',
      description: 'Second read of a read-only mount from the page cache ≥ 50 % of a local file\'s page-cache rate',
      measured: `${f(pc)} MB/s = ${f(percentOf(pc, local), 0)} % of ${f(local)}`,
      required: `≥ ${f(local === undefined ? undefined : local * 0.5)} MB/s`,
      pass: judge(pc! >= local! * 0.5, pc, local),
    });
  }
  {
    const warm = maxOf(seq.map((x) => x.warm?.mbps));
    const mem = r.ceilings.memfuseMbps;
    out.push({
      id: 'warm-vs-memfuse',
      description: 'Reads from ebsmount\'s cache (page cache dropped) ≥ 80 % of a memory-backed fuse-native file',
      measured: `${f(warm)} MB/s = ${f(percentOf(warm, mem), 0)} % of ${f(mem)}`,
      required: `≥ ${f(mem === undefined ? undefined : mem * 0.8)} MB/s`,
      pass: judge(warm! >= mem! * 0.8, warm, mem),
    });
  }
  const rnd = r.random;
  {
    const p50 = rnd?.qd1?.p50Ms;
    const limit = rnd ? 1.2 * rnd.latencyMs + 2 : undefined;
    out.push({
      id: 'random-qd1-p50',
      description: `Random 4 KiB read, QD1, p50 ≤ 1.2 × server latency + 2 ms`,
      measured: `${f(p50, 2)} ms`,
      required: `≤ ${f(limit)} ms`,
      pass: judge(p50! <= limit!, p50, limit),
    });
  }
  {
    const q1 = rnd?.qd1?.iops;
    const q32 = rnd?.qd32?.iops;
    out.push({
      id: 'random-qd32-scaling',
      description: 'Random 4 KiB read, QD32 IOPS ≥ 20 × QD1 IOPS',
      measured: `${f(q32, 0)} IOPS = ${f(q1 && q32 ? q32 / q1 : undefined)} × ${f(q1, 1)}`,
      required: `≥ ${f(q1 === undefined ? undefined : q1 * 20, 0)} IOPS`,
      pass: judge(q32! >= q1! * 20, q1, q32),
    });
  }
  {
    const ms = r.sparse?.mountMsMedian;
    out.push({
      id: 'sparse-mount-time',
      description: `Mount of a ${r.sparse ? `${r.sparse.volumeGiB / 1024} TiB snapshot holding ${r.sparse.blocks.toLocaleString('en-US')} blocks` : 'huge sparse snapshot'} < 1 s`,
      measured: `${f(ms, 0)} ms (median of ${r.sparse?.mountMs.length ?? 0}: ${r.sparse?.mountMs.map((m) => m.toFixed(0)).join(', ') ?? 'n/a'})`,
      required: '< 1000 ms',
      pass: judge(ms! < 1000, ms),
    });
  }
  {
    const rss = maxOf([r.sparse?.rssAfterMountBytes, r.sparse?.rssAfterReadsBytes]);
    const limit = s.cacheBytes + RSS_HEADROOM;
    out.push({
      id: 'rss-sparse',
      description: 'Daemon RSS, huge sparse snapshot (after mount and scattered reads) < cache size + 150 MiB',
      measured: `${f(rss === undefined ? undefined : rss / MIB, 0)} MiB`,
      required: `< ${f(limit / MIB, 0)} MiB`,
      pass: judge(rss! < limit, rss),
    });
  }
  {
    const rss = maxOf(seq.map((x) => x.cold?.rssPeakBytes));
    const limit = s.cacheBytes + RSS_HEADROOM;
    out.push({
      id: 'rss-cold-read',
      description: 'Daemon RSS peak during the cold sequential reads < cache size + 150 MiB',
      measured: `${f(rss === undefined ? undefined : rss / MIB, 0)} MiB`,
      required: `< ${f(limit / MIB, 0)} MiB`,
      pass: judge(rss! < limit, rss),
    });
  }
  {
    const rss = maxOf(seq.map((x) => x.warm?.rssPeakBytes));
    const limit = s.warmCacheBytes + RSS_HEADROOM;
    out.push({
      id: 'rss-full-cache',
      description: 'Daemon RSS peak with a full cache (warm reads) < cache size + 150 MiB',
      measured: `${f(rss === undefined ? undefined : rss / MIB, 0)} MiB`,
      required: `< ${f(limit / MIB, 0)} MiB`,
      pass: judge(rss! < limit, rss),
    });
  }
  {
    const c = r.commit;
    out.push({
      id: 'commit-rate',
      description: `Commit of ${c ? `${c.bytes / MIB} MiB` : '1 GiB'} of dirty blocks ≥ 70 % of its ceiling`,
      measured: `${f(c?.mbps)} MB/s = ${f(percentOf(c?.mbps, c?.ceilingMbps), 0)} % of ${f(c?.ceilingMbps)}`,
      required: `≥ ${f(c ? c.ceilingMbps * 0.7 : undefined)} MB/s`,
      pass: judge(c?.mbps! >= c?.ceilingMbps! * 0.7, c?.mbps, c?.ceilingMbps),
    });
  }
  {
    const worst = maxOf(seq.map((x) => x.cold?.requestsPerBlock));
    out.push({
      id: 'seq-requests-per-block',
      description: 'Sequential reads make ≤ 1.1 GetSnapshotBlock requests per block',
      measured: `${f(worst, 3)} (worst of ${seq.map((x) => `${x.latencyMs} ms: ${f(x.cold?.requestsPerBlock, 3)}`).join(', ')})`,
      required: '≤ 1.1',
      pass: judge(worst! <= 1.1, worst),
    });
  }
  out.push(...cpuTargets(r));
  // Disk cache and lineage (cache-phases.ts).
  out.push(...cacheTargets(r));
  return out;
}

/** The lean data path's CPU targets (issue #11), from the same run's figures. */
export function cpuTargets(r: BenchResults): TargetResult[] {
  const out: TargetResult[] = [];
  const seq = r.sequential;
  const work = seq.find((x) => x.latencyMs === 20) ?? seq[0];
  {
    const lean = work?.rawApi?.blocksPerCpuSecond;
    const sdk = work?.rawApiSdk?.blocksPerCpuSecond;
    out.push({
      id: 'raw-lean-vs-sdk',
      description: `Raw GetSnapshotBlock at ${work?.latencyMs ?? 20} ms: lean blocks per client CPU-second ≥ 3 × the SDK's`,
      measured: `${f(lean, 0)} vs ${f(sdk, 0)} = ${f(lean !== undefined && sdk ? lean / sdk : undefined, 2)} ×`,
      required: '≥ 3.00 ×',
      pass: judge(lean! >= 3 * sdk!, lean, sdk),
    });
  }
  {
    const ms = (x: LatencyRun) => (x.cold?.daemonCpuSeconds !== undefined && x.cold.blocksRead ? (x.cold.daemonCpuSeconds * 1000) / x.cold.blocksRead : undefined);
    const worst = maxOf(seq.map(ms));
    out.push({
      id: 'daemon-cpu-per-block',
      description: 'Daemon CPU per cold sequential block (all threads) ≤ 1.0 ms',
      measured: `${f(worst, 2)} ms (worst of ${seq.map((x) => `${x.latencyMs} ms: ${f(ms(x), 2)}`).join(', ')})`,
      required: '≤ 1.00 ms',
      pass: judge(worst! <= 1.0, worst),
    });
  }
  {
    const get = work?.rawApi?.serverCpuMsPerBlock;
    out.push({
      id: 'server-cpu-per-get',
      description: `Local server CPU per GetSnapshotBlock (raw lean run at ${work?.latencyMs ?? 20} ms) ≤ 0.3 ms`,
      measured: `${f(get, 3)} ms`,
      required: '≤ 0.300 ms',
      pass: judge(get! <= 0.3, get),
    });
    const put = r.commit?.rawApi?.serverCpuMsPerBlock;
    out.push({
      id: 'server-cpu-per-put',
      description: 'Local server CPU per PutSnapshotBlock (raw put run) ≤ 0.6 ms',
      measured: `${f(put, 3)} ms`,
      required: '≤ 0.600 ms',
      pass: judge(put! <= 0.6, put),
    });
  }
  {
    const c = r.commit;
    const cpu = c?.rawApi?.clientCpuMsPerBlock;
    out.push({
      id: 'commit-client-cpu-per-put',
      description: 'Client CPU per PutSnapshotBlock (raw put run, hashing included) ≤ 1.0 ms',
      measured: `${f(cpu, 3)} ms`,
      required: '≤ 1.000 ms',
      pass: judge(cpu! <= 1.0, cpu),
    });
    out.push({
      id: 'commit-vs-raw-put',
      description: 'Commit ≥ 70 % of the raw PutSnapshotBlock ceiling of the same run',
      measured: `${f(c?.mbps)} MB/s = ${f(percentOf(c?.mbps, c?.rawApi?.mbps), 0)} % of ${f(c?.rawApi?.mbps)}`,
      required: `≥ ${f(c?.rawApi ? c.rawApi.mbps * 0.7 : undefined)} MB/s`,
      pass: judge(c?.mbps! >= c?.rawApi?.mbps! * 0.7, c?.mbps, c?.rawApi?.mbps),
    });
  }
  {
    const e = r.exportRun;
    out.push({
      id: 'export-rate',
      description: `Export at ${e?.latencyMs ?? 20} ms ≥ 70 % of the upstream ceiling`,
      measured: `${f(e?.mbps)} MB/s = ${f(percentOf(e?.mbps, e?.upstreamCeilingMbps), 0)} % of ${f(e?.upstreamCeilingMbps)}`,
      required: `≥ ${f(e ? e.upstreamCeilingMbps * 0.7 : undefined)} MB/s`,
      pass: judge(e?.mbps! >= e?.upstreamCeilingMbps! * 0.7, e?.mbps, e?.upstreamCeilingMbps),
    });
    out.push({
      id: 'export-cpu-per-block',
      description: 'Export CPU per block (the export process, all threads) ≤ 1.0 ms',
      measured: `${f(e?.cpuMsPerBlock, 3)} ms`,
      required: '≤ 1.000 ms',
      pass: judge(e?.cpuMsPerBlock! <= 1.0, e?.cpuMsPerBlock),
    });
  }
  return out;
}
