#!/usr/bin/env node
/**
 * `npm run bench` (through scripts/bench.sh, as root): measures ebsmount end to end against a
 * local `ebsmount serve` with injected latency and the per-snapshot rate limit, in one run, and
 * writes results.json, results.md and throughput.svg (see settings.ts for the knobs and where).
 *
 * Contract: every phase runs even when an earlier one failed (its error is recorded); everything
 * started or mounted is undone on the way out, also on SIGINT/SIGTERM; exit status 0 when every
 * phase ran (targets may still FAIL: that is a finding, not a crash), 1 when a phase failed.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchSettings, type BenchSettings } from './settings.js';
import { Cleanup } from './cleanup.js';
import { EbsmountCli } from './ebsmount-cli.js';
import { LocalServer } from './local-server.js';
import { BenchPhases } from './phases.js';
import { CachePhases } from './cache-phases.js';
import type { BenchResults } from './results.js';
import { evaluateTargets } from './targets.js';
import { renderMarkdown, renderText, renderThroughputPlot } from './report.js';
import { machineInfo } from './system.js';
import { spliceBenchSection } from './readme-section.js';
import { MIB } from './settings.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const started = performance.now();

function log(msg: string): void {
  const s = Math.round((performance.now() - started) / 1000);
  process.stderr.write(`[bench ${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${msg}\n`);
}

function publicSettings(s: BenchSettings, uploadConcurrency: number): Record<string, unknown> {
  return {
    imageMiB: s.imageBytes / MIB,
    quick: s.quick,
    latenciesMs: s.latenciesMs,
    workloadLatencyMs: s.workloadLatencyMs,
    jitterMs: s.jitterMs,
    rateLimitPerSnapshot: s.rateLimit,
    cacheSizeMiB: s.cacheBytes / MIB,
    warmCacheSizeMiB: s.warmCacheBytes / MIB,
    readAheadMiB: s.readAheadBytes / MIB,
    maxConcurrency: s.maxConcurrency,
    uploadConcurrency,
    requestRate: s.requestRate,
    ext4FileMiB: s.ext4FileBytes / MIB,
    randomQd1Reads: s.randomQd1Reads,
    randomQd32Reads: s.randomQd32Jobs * s.randomQd32ReadsPerJob,
    sparseVolumeGiB: s.sparseVolumeGiB,
    sparseBlocks: s.sparseBlocks,
    commitMiB: s.commitBytes / MIB,
  };
}

/**
 * Upload concurrency of a commit: ebsmount's `--upload-concurrency` default if its mount help
 * names one, else max-concurrency (the ceiling formula needs the number actually used).
 */
async function uploadConcurrencyOf(cli: EbsmountCli, fallback: number): Promise<number> {
  try {
    const r = await cli.cli(['mount', '--help'], { timeoutMs: 30_000, allowFail: true });
    const m = /--upload-concurrency[^\n]*?\[default: (\d+)\]/.exec(r.stdout);
    return m ? Number(m[1]) : fallback;
  } catch {
    return fallback;
  }
}

/** FUSE options ebsmount's adapter adds (when its source says so), for memfuse to match. */
async function ebsmountFuseOptions(): Promise<string[]> {
  const env = process.env.BENCH_MEMFUSE_OPTIONS;
  if (env !== undefined) return env.split(',').filter(Boolean);
  return [];
}

async function main(): Promise<number> {
  const settings = benchSettings(process.env, repoRoot);
  const work = process.env.BENCH_WORK || (await mkdtemp(join(tmpdir(), 'ebsmount-bench-')));
  const ownsWork = !process.env.BENCH_WORK;
  await mkdir(work, { recursive: true });
  const cleanup = new Cleanup(join(work, 'pids'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDBENCHLOCAL',
    AWS_SECRET_ACCESS_KEY: 'bench-local-server',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  delete env.AWS_PROFILE;
  const cli = new EbsmountCli(repoRoot, env, cleanup);
  const server = new LocalServer(cli, join(work, 'server-data'), join(work, 'server.log'), cleanup);

  let exiting = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (exiting) return;
    exiting = true;
    log(`${sig}: cleaning up`);
    void cleanup.runAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const uploadConcurrency = await uploadConcurrencyOf(cli, settings.maxConcurrency);
  const results: BenchResults = {
    tool: 'ebsmount bench',
    machine: machineInfo(),
    settings: publicSettings(settings, uploadConcurrency),
    setup: { imageBytes: settings.imageBytes },
    ceilings: {},
    sequential: [],
    targets: [],
    errors: [],
  };
  const phases = new BenchPhases({ settings, work, repoRoot, cli, server, cleanup, results, log, memfuseOptions: await ebsmountFuseOptions() });
  const cachePhases = new CachePhases({ settings, work, repoRoot, cli, server, cleanup, results, log, memfuseOptions: [] });
  log(`work dir ${work}; image ${settings.imageBytes / MIB} MiB; outputs to ${settings.outDir}`);

  // BENCH_ONLY=cache: setup and the disk cache phases only (figures for README by hand; the
  // Performance section is not rewritten from a partial run).
  const only = process.env.BENCH_ONLY === 'cache' ? /^(setup|\(a\) local file|\([ghi]\))/ : undefined;
  if (only) {
    settings.updateReadme = false;
    settings.outDir = join(repoRoot, '.bench', 'cache');
  }
  const phase = async (name: string, fn: () => Promise<void>): Promise<void> => {
    if (exiting || (only && !only.test(name))) return;
    const t0 = performance.now();
    log(`== ${name}`);
    try {
      await fn();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      results.errors.push({ phase: name, message });
      log(`!! ${name} failed: ${message}`);
    }
    log(`   ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  };

  try {
    await phase('setup: images, server, import', () => phases.setup());
    await phase('(a) local file ceiling', () => phases.localFile());
    await phase('(a) memory-backed fuse-native ceiling', () => phases.memfuse());
    await phase('(d) reference: random reads on memfuse with latency', () => phases.memfuseRandom());
    for (const ms of settings.latenciesMs) await phase(`(b) sequential read at ${ms} ms`, () => phases.sequential(ms));
    await phase('(c) ext4 file read', () => phases.ext4());
    await phase('(d) random 4 KiB reads', () => phases.random());
    await phase('(f) commit', () => phases.commit(uploadConcurrency));
    await phase('(g) export', () => phases.exportSnapshot());
    await phase('(e) 16 TiB sparse snapshot', () => phases.sparse());
    await phase('(g) disk cache: remount', () => cachePhases.remount());
    await phase('(h) disk cache: lineage child', () => cachePhases.lineage());
    await phase('(i) disk cache: open 1,000,000 entries', () => cachePhases.open1m());
  } finally {
    const failures = await cleanup.runAll();
    for (const f of failures) {
      results.errors.push({ phase: 'cleanup', message: f });
      log(`!! cleanup: ${f}`);
    }
    if (ownsWork) await rm(work, { recursive: true, force: true });
  }
  if (exiting) return 130;

  results.durationSeconds = (performance.now() - started) / 1000;
  results.targets = evaluateTargets(results, { cacheBytes: settings.cacheBytes, warmCacheBytes: settings.warmCacheBytes });
  await mkdir(settings.outDir, { recursive: true });
  await writeFile(join(settings.outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(join(settings.outDir, 'results.md'), renderMarkdown(results));
  await writeFile(join(settings.outDir, 'throughput.svg'), renderThroughputPlot(results, { rateLimit: settings.rateLimit, maxConcurrency: settings.maxConcurrency }));
  if (settings.updateReadme) {
    const readmePath = join(repoRoot, 'README.md');
    const readme = await readFile(readmePath, 'utf8');
    await writeFile(readmePath, spliceBenchSection(readme, renderMarkdown(results), relative(repoRoot, settings.outDir)));
    log('updated the Performance section of README.md');
  }
  process.stdout.write(`\n${renderText(results)}\n`);
  log(`done in ${(results.durationSeconds / 60).toFixed(1)} min; wrote ${settings.outDir}/results.{json,md} and throughput.svg`);
  return results.errors.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
