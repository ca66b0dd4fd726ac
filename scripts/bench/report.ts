/**
 * Turns BenchResults into what people read: the tables (plain text for the terminal, Markdown for
 * docs/bench/results.md) and the throughput-vs-latency plot (docs/bench/throughput.svg).
 * Pure: no I/O here; main.ts writes the files.
 */
import type { BenchResults } from './results.js';
import type { PlotSeries } from './svg-plot.js';
import { renderLinePlot } from './svg-plot.js';
import { percentOf, upstreamCeiling, MB } from './stats.js';
import { MIB } from './settings.js';
import { cacheTable } from './cache-phases.js';

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
}

const na = 'n/a';

function num(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? na : n.toFixed(digits);
}

function mibOf(bytes: number | undefined): string {
  return bytes === undefined ? na : (bytes / MIB).toFixed(0);
}

function sizeText(bytes: number): string {
  return bytes >= 1024 * MIB && bytes % (1024 * MIB) === 0 ? `${bytes / (1024 * MIB)} GiB` : `${(bytes / MIB).toFixed(0)} MiB`;
}

function perBlockMs(seconds: number | undefined, blocks: number | undefined): number | undefined {
  return seconds === undefined || !blocks ? undefined : (seconds * 1000) / blocks;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

export function resultTables(r: BenchResults): Table[] {
  const tables: Table[] = [];
  const image = sizeText(r.setup.imageBytes);
  tables.push({
    title: 'Ceilings',
    headers: ['Measure', 'MB/s', 'How'],
    rows: [
      ['Local file, cold', num(r.ceilings.localColdMbps), `dd bs=1M of the ${image} image file, page cache dropped`],
      ['Local file, page cache', num(r.ceilings.localPageCacheMbps), 'second dd of the same file (best of 2)'],
      ['Memory-backed fuse-native file', num(r.ceilings.memfuseMbps), `scripts/bench/memfuse.ts, ${image} Buffer, page cache dropped (best of 2 after a warm-up read)`],
    ],
  });
  const mr = r.ceilings.memfuseRandom;
  if (mr) {
    tables[0]!.rows.push([
      `memfuse + ${mr.latencyMs} ms per read: random 4 KiB`,
      na,
      `reference for the random reads: QD1 ${num(mr.qd1.iops, 0)} IOPS (p50 ${num(mr.qd1.p50Ms, 2)} ms), QD${mr.qd32.queueDepth} ${num(mr.qd32.iops, 0)} IOPS (p50 ${num(mr.qd32.p50Ms, 2)} ms)`,
    ]);
  }
  tables.push({
    title: `Sequential read of the ${image} random image through ebsmount (dd bs=1M)`,
    headers: ['Server latency', 'Upstream ceiling MB/s', 'Raw API MB/s', 'Cold MB/s', '% of ceiling', '% of warm', 'Requests / block', 'RSS peak MiB', 'Daemon CPU s', 'Daemon CPU ms / block', 'Server CPU ms / block', 'Warm MB/s', 'Page-cache re-read MB/s'],
    rows: r.sequential.map((x) => [
      `${x.latencyMs} ms`,
      num(x.upstreamCeilingMbps),
      num(x.rawApi?.mbps),
      num(x.cold?.mbps),
      num(percentOf(x.cold?.mbps, x.upstreamCeilingMbps), 0),
      num(percentOf(x.cold?.mbps, x.warm?.mbps), 0),
      num(x.cold?.requestsPerBlock, 3),
      mibOf(x.cold?.rssPeakBytes),
      num(x.cold?.daemonCpuSeconds, 1),
      num(perBlockMs(x.cold?.daemonCpuSeconds, x.cold?.blocksRead), 2),
      num(perBlockMs(x.cold?.serverCpuSeconds, x.cold?.blocksRead), 2),
      num(x.warm?.mbps),
      num(x.warm?.pageCacheMbps),
    ]),
  });
  const raws = r.sequential.filter((x) => x.rawApi || x.rawApiSdk);
  if (raws.length) {
    tables.push({
      title: 'Raw GetSnapshotBlock, the AWS SDK and the lean path side by side (64 in flight, verified, no FUSE; CPU of all threads)',
      headers: ['Server latency', 'SDK MB/s', 'SDK client CPU ms / block', 'SDK blocks / CPU-s', 'Lean MB/s', 'Lean client CPU ms / block', 'Lean blocks / CPU-s', 'Lean ÷ SDK', 'Server CPU ms / GET (lean run)'],
      rows: raws.map((x) => [
        `${x.latencyMs} ms`,
        num(x.rawApiSdk?.mbps),
        num(x.rawApiSdk?.clientCpuMsPerBlock, 3),
        num(x.rawApiSdk?.blocksPerCpuSecond, 0),
        num(x.rawApi?.mbps),
        num(x.rawApi?.clientCpuMsPerBlock, 3),
        num(x.rawApi?.blocksPerCpuSecond, 0),
        num(ratio(x.rawApi?.blocksPerCpuSecond, x.rawApiSdk?.blocksPerCpuSecond), 2),
        num(x.rawApi?.serverCpuMsPerBlock, 3),
      ]),
    });
  }
  const rows: string[][] = [];
  if (r.ext4) {
    rows.push([
      `ext4 (loop, ro,noload), one ${sizeText(r.ext4.fileBytes)} file, cold, ${r.ext4.latencyMs} ms`,
      `${num(r.ext4.mbps)} MB/s`,
      `${num(percentOf(r.ext4.mbps, r.ext4.upstreamCeilingMbps), 0)} % of upstream ceiling ${num(r.ext4.upstreamCeilingMbps)}; ${num(r.ext4.requestsPerBlock, 3)} requests / block read`,
    ]);
  }
  for (const q of [r.random?.qd1, r.random?.qd32]) {
    if (!q) continue;
    rows.push([
      `Random 4 KiB reads, QD${q.queueDepth}, cold, ${r.random!.latencyMs} ms`,
      `${num(q.iops, 0)} IOPS`,
      `p50 ${num(q.p50Ms, 2)} ms, p99 ${num(q.p99Ms, 2)} ms, ${q.reads} reads in distinct blocks; ${num(q.requestsPerRead, 3)} requests / read`,
    ]);
  }
  if (r.sparse) {
    const s = r.sparse;
    rows.push([
      `Mount of a ${s.volumeGiB / 1024} TiB snapshot holding ${s.blocks.toLocaleString('en-US')} blocks`,
      `${num(s.mountMsMedian, 0)} ms`,
      `median of ${s.mountMs.length} (${s.mountMs.map((m) => m.toFixed(0)).join(', ')} ms), whole \`ebsmount SNAP MNT\` command`,
    ]);
    rows.push([
      'Daemon RSS, that snapshot',
      `${mibOf(s.rssAfterReadsBytes)} MiB`,
      `${mibOf(s.rssAfterMountBytes)} MiB after mount, ${mibOf(s.rssAfterReadsBytes)} MiB after ${s.scatteredReads} scattered 4 KiB reads; cache ${mibOf(s.cacheBytes)} MiB`,
    ]);
  }
  if (r.commit) {
    const c = r.commit;
    rows.push([
      `Commit of ${sizeText(c.bytes)} dirty blocks (ebsmount unmount), ${c.latencyMs} ms`,
      `${num(c.mbps)} MB/s`,
      `${num(c.unmountSeconds, 2)} s; ${num(percentOf(c.mbps, c.ceilingMbps), 0)} % of ceiling ${num(c.ceilingMbps)} (upload concurrency ${c.uploadConcurrency})${c.rawApi ? `; raw API puts ${num(c.rawApi.mbps)} MB/s (commit = ${num(percentOf(c.mbps, c.rawApi.mbps), 0)} % of it; client CPU ${num(c.rawApi.clientCpuMsPerBlock, 3)} ms / put, server ${num(c.rawApi.serverCpuMsPerBlock, 3)} ms / put)` : ''}; writing it: ${num(c.writeMbps)} MB/s`,
    ]);
  }
  if (r.exportRun) {
    const e = r.exportRun;
    rows.push([
      `Export of the ${sizeText(e.bytes)} snapshot to a file (ebsmount export), ${e.latencyMs} ms`,
      `${num(e.mbps)} MB/s`,
      `${num(e.seconds, 1)} s; ${num(percentOf(e.mbps, e.upstreamCeilingMbps), 0)} % of upstream ceiling ${num(e.upstreamCeilingMbps)}; export process CPU ${num(e.cpuMsPerBlock, 3)} ms / block, server ${num(perBlockMs(e.serverCpuSeconds, e.blocks), 3)} ms / block`,
    ]);
  }
  tables.push({ title: 'Other workloads', headers: ['Workload', 'Result', 'Details'], rows });
  const cache = cacheTable(r);
  if (cache) tables.push(cache);
  tables.push({
    title: 'Targets',
    headers: ['Target', 'Measured', 'Required', 'Result'],
    rows: r.targets.map((t) => [t.description, t.measured, t.required, t.pass === null ? 'NOT MEASURED' : t.pass ? 'PASS' : 'FAIL']),
  });
  return tables;
}

const NUMERIC_CELL = /^(n\/a|[-+]?[\d.,]+( ?[a-zA-Z/%]+)?)$/;

/** Fixed-width columns: numeric columns right-aligned, text columns left-aligned. */
export function renderTextTable(t: Table): string {
  const widths = t.headers.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const numeric = t.headers.map((_, i) => i > 0 && t.rows.length > 0 && t.rows.every((r) => NUMERIC_CELL.test(r[i] ?? '')));
  const line = (cells: string[]): string => cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [t.title, line(t.headers), widths.map((w) => '-'.repeat(w)).join('  '), ...t.rows.map(line)].join('\n');
}

function mdCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

export function renderMarkdownTable(t: Table): string {
  return [
    `### ${t.title}`,
    '',
    `| ${t.headers.map(mdCell).join(' | ')} |`,
    `|${t.headers.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`),
  ].join('\n');
}

function settingsLine(r: BenchResults): string {
  const s = r.settings;
  return Object.entries(s)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('/') : String(v)}`)
    .join(', ');
}

export function renderMarkdown(r: BenchResults): string {
  const m = r.machine;
  const parts = [
    '## Benchmark',
    '',
    `Measured by \`npm run bench\` on ${m.date.slice(0, 10)}: ${m.cpuModel}, ${m.cores} cores, ${(m.memoryBytes / 1024 ** 3).toFixed(1)} GiB RAM, ${m.kernel}, Node ${m.node}` +
      (r.durationSeconds ? `; the run took ${(r.durationSeconds / 60).toFixed(1)} min.` : '.'),
    '',
    `Settings: ${settingsLine(r)}.`,
    '',
    `Load average (1 min) when the run started: ${m.loadAverage.toFixed(2)} on ${m.cores} cores. The server runs on the same machine as the mount, so figures compare side by side, within one run.`,
    '',
    'Rates in MB/s (10^6 bytes/s). Upstream ceiling = min(rate limit × 512 KiB, max-concurrency × 512 KiB / latency). ' +
      'Raw API = GetSnapshotBlock through ebsmount\'s own client alone (its default lean path; the AWS SDK\'s beside it in the raw table; max-concurrency in flight, SHA-256 verified on a hash worker, no FUSE, no cache), measured just before the cold read: what this machine\'s CPU lets any reader reach. CPU figures are process CPU time (all threads) per block, from /proc.',
    '',
    ...resultTables(r).flatMap((t) => [renderMarkdownTable(t), '']),
    '![Throughput against latency](throughput.svg)',
  ];
  if (r.errors.length) parts.push('', '### Phases that failed', '', ...r.errors.map((e) => `- ${e.phase}: ${e.message.split('\n')[0]}`));
  return `${parts.join('\n')}\n`;
}

export function renderText(r: BenchResults): string {
  const parts = resultTables(r).map(renderTextTable);
  if (r.errors.length) parts.push(['Phases that failed', ...r.errors.map((e) => `  ${e.phase}: ${e.message}`)].join('\n'));
  return `${parts.join('\n\n')}\n`;
}

/** Cold and warm throughput against server latency, with the upstream and FUSE ceilings. */
export function renderThroughputPlot(r: BenchResults, opts: { rateLimit: number; maxConcurrency: number }): string {
  const seq = [...r.sequential].sort((a, b) => a.latencyMs - b.latencyMs);
  const maxLatency = Math.max(100, ...seq.map((x) => x.latencyMs));
  const ceiling: PlotSeries = {
    name: `upstream ceiling (${opts.rateLimit}/s, ${opts.maxConcurrency} in flight)`,
    color: '#888888',
    dashed: true,
    points: Array.from({ length: 51 }, (_, i) => {
      const x = (i / 50) * maxLatency;
      return { x, y: upstreamCeiling({ rateLimit: opts.rateLimit, concurrency: opts.maxConcurrency, latencyMs: x }) / MB };
    }),
  };
  const series: PlotSeries[] = [
    { name: 'cold read (ebsmount)', color: '#1f77b4', markers: true, labels: true, points: seq.filter((x) => x.cold).map((x) => ({ x: x.latencyMs, y: x.cold!.mbps })) },
    { name: 'warm read (ebsmount cache)', color: '#d62728', markers: true, labels: true, points: seq.filter((x) => x.warm).map((x) => ({ x: x.latencyMs, y: x.warm!.mbps })) },
    ceiling,
  ];
  const raw = seq.filter((x) => x.rawApi);
  if (raw.length) {
    series.push({ name: 'raw API client, no FUSE (this machine)', color: '#ff7f0e', dashed: true, markers: true, points: raw.map((x) => ({ x: x.latencyMs, y: x.rawApi!.mbps })) });
  }
  const mem = r.ceilings.memfuseMbps;
  if (mem !== undefined) {
    series.push({ name: 'memory-backed fuse-native file', color: '#2ca02c', dashed: true, points: [{ x: 0, y: mem }, { x: maxLatency, y: mem }] });
  }
  return renderLinePlot({
    title: `ebsmount sequential read of a ${sizeText(r.setup.imageBytes)} image (dd bs=1M)`,
    xLabel: 'server latency per request (ms)',
    yLabel: 'throughput (MB/s)',
    series,
  });
}
