/**
 * Benchmark settings: the defaults of `npm run bench` and the environment knobs that change them.
 *
 * Contract: `benchSettings(env)` is pure (reads only the object it is given), validates every knob
 * and throws an Error naming the bad one. Knobs:
 *   BENCH_SIZE_MIB  size of the random image (default 2048; a multiple of 64, ≥ 64)
 *   BENCH_QUICK=1   small smoke run: 256 MiB image, fewer random reads, a smaller sparse snapshot
 *   BENCH_OUT       where results.json / results.md / throughput.svg go (default docs/bench for
 *                   a run with default settings, .bench/ otherwise so a smoke run never overwrites
 *                   the published figures)
 *   BENCH_CPU_PROF=1  run the mount daemons of the cold reads under `node --cpu-prof` (profiles
 *                   land in the output dir's profiles/)
 */
import { BLOCK_SIZE } from '../../src/ebs/constants.js';

export const MIB = 1024 * 1024;

export interface BenchSettings {
  quick: boolean;
  /** Size of the random image, bytes. */
  imageBytes: number;
  /** Server latencies for the cold/warm sequential reads, ms. */
  latenciesMs: number[];
  /** Latency for the ext4, random-read and commit phases, ms. */
  workloadLatencyMs: number;
  jitterMs: number;
  /** Server per-snapshot rate limit, requests/s. */
  rateLimit: number;
  /** Mount settings (the CLI flags of `ebsmount SNAP MNT`). */
  cacheBytes: number;
  readAheadBytes: number;
  maxConcurrency: number;
  requestRate: number;
  /** Cache size of the warm mounts: the whole image fits. */
  warmCacheBytes: number;
  /** Size of the large file inside the ext4 image, bytes. */
  ext4FileBytes: number;
  /** Random 4 KiB reads: total reads at queue depth 1, and per job at queue depth 32. */
  randomQd1Reads: number;
  randomQd32Jobs: number;
  randomQd32ReadsPerJob: number;
  /** Sparse snapshot of (e). */
  sparseVolumeGiB: number;
  sparseBlocks: number;
  sparsePutConcurrency: number;
  /** Scattered 4 KiB reads over the sparse volume after mounting it (forces block-map paging). */
  sparseScatteredReads: number;
  mountRepeats: number;
  /** Dirty data committed in (f), bytes. */
  commitBytes: number;
  /** Where the outputs go. */
  outDir: string;
  /** Full default run written to docs/bench: also refresh README.md's Performance section. */
  updateReadme: boolean;
  cpuProfile: boolean;
}

function intKnob(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a whole number, got '${raw}'`);
  return Number(raw);
}

export function benchSettings(env: NodeJS.ProcessEnv, repoRoot: string): BenchSettings {
  const quick = env.BENCH_QUICK === '1';
  const sizeMiB = intKnob(env, 'BENCH_SIZE_MIB', quick ? 256 : 2048);
  if (sizeMiB < 64 || sizeMiB % 64 !== 0) throw new Error(`BENCH_SIZE_MIB must be a multiple of 64, at least 64 (got ${sizeMiB})`);
  const imageBytes = sizeMiB * MIB;
  const imageBlocks = imageBytes / BLOCK_SIZE;
  const isDefault = !quick && sizeMiB === 2048;
  const randomQd32Jobs = 32;
  const perJobBlocks = Math.floor(imageBlocks / randomQd32Jobs);
  const randomQd1Reads = quick ? 48 : 256;
  // QD32 reads use blocks disjoint from QD1's: keep both within the image's distinct blocks.
  const randomQd32ReadsPerJob = Math.max(1, Math.min(quick ? 8 : 64, Math.floor((imageBlocks - randomQd1Reads) / randomQd32Jobs), perJobBlocks));
  const cacheBytes = 512 * MIB;
  return {
    quick,
    imageBytes,
    latenciesMs: [0, 20, 100],
    workloadLatencyMs: 20,
    jitterMs: 0,
    rateLimit: 1000,
    cacheBytes,
    readAheadBytes: 32 * MIB,
    maxConcurrency: 64,
    requestRate: 1000,
    warmCacheBytes: Math.max(cacheBytes, imageBytes + 256 * MIB),
    ext4FileBytes: Math.max(32 * MIB, Math.floor(imageBytes / 2 / MIB) * MIB),
    randomQd1Reads,
    randomQd32Jobs,
    randomQd32ReadsPerJob,
    sparseVolumeGiB: 16384,
    sparseBlocks: quick ? 5_000 : 100_000,
    sparsePutConcurrency: 64,
    sparseScatteredReads: quick ? 64 : 256,
    mountRepeats: 3,
    commitBytes: Math.min(1024 * MIB, Math.floor(imageBytes / 2)),
    outDir: env.BENCH_OUT || `${repoRoot}/${isDefault ? 'docs/bench' : '.bench'}`,
    updateReadme: isDefault && !env.BENCH_OUT,
    cpuProfile: env.BENCH_CPU_PROF === '1',
  };
}
