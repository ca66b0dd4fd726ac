import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateTargets } from '../../../scripts/bench/targets.js';
import { renderMarkdown, renderText, renderThroughputPlot, resultTables, renderMarkdownTable } from '../../../scripts/bench/report.js';
import type { BenchResults } from '../../../scripts/bench/results.js';
import { MIB } from '../../../scripts/bench/settings.js';

function sample(): BenchResults {
  const cold = (mbps: number, rpb: number) => ({ mbps, seconds: 1, bytes: 1, mountMs: 300, blocksRead: 4096, requestsPerBlock: rpb, rssPeakBytes: 300 * MIB });
  const warm = (mbps: number) => ({ fillMbps: 300, mbps, runsMbps: [mbps], pageCacheMbps: 3000, rssPeakBytes: 2000 * MIB, cacheBytes: 2304 * MIB });
  return {
    tool: 'ebsmount bench',
    machine: { cpuModel: 'AMD EPYC', cores: 2, memoryBytes: 24 * 1024 ** 3, kernel: 'Linux 6.1', node: 'v20.20.2', date: '2026-11-24T22:00:00.000Z', hostname: 'h', loadAverage: 0.5 },
    settings: { imageMiB: 2048, latenciesMs: [0, 20, 100] },
    setup: { imageBytes: 2048 * MIB },
    ceilings: { localColdMbps: 900, localPageCacheMbps: 5000, memfuseMbps: 1000 },
    sequential: [
      { latencyMs: 0, upstreamCeilingMbps: 524.288, cold: cold(400, 1.0), warm: warm(900) },
      { latencyMs: 20, upstreamCeilingMbps: 524.288, cold: cold(380, 1.0), warm: warm(850) },
      { latencyMs: 100, upstreamCeilingMbps: 335.54432, cold: cold(200, 1.5), warm: warm(870) },
    ],
    random: {
      latencyMs: 20,
      qd1: { queueDepth: 1, reads: 256, iops: 45, p50Ms: 21.5, p99Ms: 30, meanMs: 22, maxMs: 40, seconds: 5.6 },
      qd32: { queueDepth: 32, reads: 2048, iops: 800, p50Ms: 35, p99Ms: 60, meanMs: 38, maxMs: 90, seconds: 2.5 },
    },
    sparse: { volumeGiB: 16384, blocks: 100000, buildSeconds: 120, mountMs: [700, 650, 1200], mountMsMedian: 700, rssAfterMountBytes: 100 * MIB, rssAfterReadsBytes: 120 * MIB, scatteredReads: 256, cacheBytes: 512 * MIB },
    commit: { latencyMs: 20, bytes: 1024 * MIB, writeMbps: 200, unmountSeconds: 4, mbps: 268, ceilingMbps: 524.288, uploadConcurrency: 64 },
    targets: [],
    errors: [],
  };
}

describe('bench targets', () => {
  test('each target passes or fails by its own rule', () => {
    const r = sample();
    const t = Object.fromEntries(evaluateTargets(r, { cacheBytes: 512 * MIB, warmCacheBytes: 2304 * MIB }).map((x) => [x.id, x.pass]));
    assert.equal(t['cold-seq-20ms'], true); // 380 ≥ 0.7 × min(524, 850)
    assert.equal(t['cold-seq-100ms'], false); // 200 < 0.7 × min(335.5, 870) = 234.9
    assert.equal(t['cold-seq-latency-hidden'], false); // 200 < 0.9 × 400
    assert.equal(t['page-cache-reread'], true); // 3000 ≥ 2500
    assert.equal(t['warm-vs-memfuse'], true); // 900 ≥ 800
    assert.equal(t['random-qd1-p50'], true); // 21.5 ≤ 26
    assert.equal(t['random-qd32-scaling'], false); // 800 < 900
    assert.equal(t['sparse-mount-time'], true); // median 700
    assert.equal(t['rss-sparse'], true);
    assert.equal(t['rss-cold-read'], true);
    assert.equal(t['rss-full-cache'], true); // 2000 < 2454
    assert.equal(t['commit-rate'], false); // 268 < 367
    assert.equal(t['seq-requests-per-block'], false); // worst 1.5
  });

  test('a target without its measurement is not measured, never PASS', () => {
    const r = sample();
    delete r.random;
    delete r.commit;
    r.ceilings = {};
    const t = Object.fromEntries(evaluateTargets(r, { cacheBytes: 512 * MIB, warmCacheBytes: 2304 * MIB }).map((x) => [x.id, x.pass]));
    assert.equal(t['random-qd1-p50'], null);
    assert.equal(t['random-qd32-scaling'], null);
    assert.equal(t['commit-rate'], null);
    assert.equal(t['warm-vs-memfuse'], null);
    assert.equal(t['page-cache-reread'], null);
    assert.equal(t['cold-seq-20ms'], true);
  });
});

describe('bench report', () => {
  test('markdown has the machine, settings, every table and the plot; text shows PASS/FAIL', () => {
    const r = sample();
    r.targets = evaluateTargets(r, { cacheBytes: 512 * MIB, warmCacheBytes: 2304 * MIB });
    const md = renderMarkdown(r);
    assert.match(md, /AMD EPYC, 2 cores/);
    assert.match(md, /Settings: imageMiB=2048, latenciesMs=0\/20\/100/);
    assert.match(md, /### Ceilings/);
    assert.match(md, /\| 100 ms \| 335\.5 \| n\/a \| 200\.0 \| 60 \| 23 \| 1\.500 \|/);
    assert.match(md, /### Targets/);
    assert.match(md, /throughput\.svg/);
    const text = renderText(r);
    assert.match(text, /FAIL/);
    assert.match(text, /PASS/);
    r.ceilings.memfuseRandom = {
      latencyMs: 20,
      qd1: { queueDepth: 1, reads: 256, iops: 48.4, p50Ms: 20.58, p99Ms: 21, meanMs: 20.6, maxMs: 22, seconds: 5 },
      qd32: { queueDepth: 32, reads: 2048, iops: 1488, p50Ms: 21.1, p99Ms: 24, meanMs: 21.3, maxMs: 25, seconds: 1.4 },
    };
    assert.match(renderMarkdown(r), /QD1 48 IOPS \(p50 20\.58 ms\), QD32 1488 IOPS/);
    const svg = renderThroughputPlot(r, { rateLimit: 1000, maxConcurrency: 64 });
    assert.equal(svg.match(/<polyline /g)!.length, 4);
    // The machine's own client ceiling, when measured, is a column and one more line in the plot.
    r.sequential[2]!.rawApi = { latencyMs: 100, concurrency: 64, blocks: 1024, requestsPerSecond: 300, mbps: 157.3, p50Ms: 210, clientCpuSeconds: 3 };
    assert.match(renderMarkdown(r), /\| 100 ms \| 335\.5 \| 157\.3 \| 200\.0 \|/);
    assert.match(renderMarkdown(r), /Raw API = GetSnapshotBlock/);
    assert.equal(renderThroughputPlot(r, { rateLimit: 1000, maxConcurrency: 64 }).match(/<polyline /g)!.length, 5);
    // The commit's side-by-side put ceiling, when measured, is named with the commit's share of it.
    assert.doesNotMatch(renderMarkdown(r), /raw API puts/);
    r.commit!.rawApi = { latencyMs: 20, concurrency: 64, blocks: 1024, requestsPerSecond: 700, mbps: 367, p50Ms: 90, clientCpuSeconds: 2 };
    assert.match(renderMarkdown(r), /raw API puts 367\.0 MB\/s \(commit = 73 % of it;/);
  });

  test('markdown cells escape pipes; tables have one row per latency', () => {
    const t = { title: 'T', headers: ['a', 'b'], rows: [['x|y', '1']] };
    assert.match(renderMarkdownTable(t), /\| x\\\|y \| 1 \|/);
    const seq = resultTables(sample()).find((x) => x.title.startsWith('Sequential'))!;
    assert.equal(seq.rows.length, 3);
  });
});

describe('lean data path CPU targets (issue #11)', () => {
  const raw = (client: string, msPerBlock: number, serverMs: number) => ({
    client, latencyMs: 20, concurrency: 64, blocks: 1000, requestsPerSecond: 500, mbps: 262, p50Ms: 25,
    clientCpuSeconds: msPerBlock, clientCpuMsPerBlock: msPerBlock, blocksPerCpuSecond: 1000 / msPerBlock, serverCpuMsPerBlock: serverMs,
  });
  test('lean vs SDK blocks per CPU-second, daemon/server CPU per block, commit and export', () => {
    const r = sample();
    r.sequential[1]!.rawApiSdk = raw('sdk', 3.0, 0.8);
    r.sequential[1]!.rawApi = raw('lean', 0.9, 0.25); // 3.33 ×
    for (const x of r.sequential) x.cold!.daemonCpuSeconds = 4096 * 0.0009; // 0.9 ms per block
    r.sequential[2]!.cold!.daemonCpuSeconds = 4096 * 0.0012; // worst 1.2 ms
    r.commit!.rawApi = { ...raw('lean', 1.1, 0.5), mbps: 300 };
    r.exportRun = { latencyMs: 20, bytes: 2048 * MIB, seconds: 5, mbps: 429, blocks: 4096, upstreamCeilingMbps: 524.288, cpuSeconds: 3, cpuMsPerBlock: 0.73 };
    const t = Object.fromEntries(evaluateTargets(r, { cacheBytes: 512 * MIB, warmCacheBytes: 2304 * MIB }).map((x) => [x.id, x.pass]));
    assert.equal(t['raw-lean-vs-sdk'], true);
    assert.equal(t['daemon-cpu-per-block'], false);
    assert.equal(t['server-cpu-per-get'], true);
    assert.equal(t['server-cpu-per-put'], true);
    assert.equal(t['commit-client-cpu-per-put'], false);
    assert.equal(t['commit-vs-raw-put'], true); // 268 ≥ 0.7 × 300
    assert.equal(t['export-rate'], true); // 429 ≥ 367
    assert.equal(t['export-cpu-per-block'], true);
    const sideBySide = resultTables(r).find((x) => x.title.startsWith('Raw GetSnapshotBlock'))!;
    assert.deepEqual(sideBySide.rows[0]!.slice(0, 1), ['20 ms']);
    assert.equal(sideBySide.rows[0]![7], '3.33');
  });
  test('without the side-by-side runs they are not measured', () => {
    const r = sample();
    const t = Object.fromEntries(evaluateTargets(r, { cacheBytes: 512 * MIB, warmCacheBytes: 2304 * MIB }).map((x) => [x.id, x.pass]));
    for (const id of ['raw-lean-vs-sdk', 'daemon-cpu-per-block', 'server-cpu-per-get', 'commit-client-cpu-per-put', 'commit-vs-raw-put', 'export-rate', 'export-cpu-per-block']) {
      assert.equal(t[id], null, id);
    }
    const tables = resultTables(r).map((x) => x.title);
    assert.ok(!tables.some((x) => x.startsWith('Raw GetSnapshotBlock')));
  });
});
