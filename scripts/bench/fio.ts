/**
 * Random 4 KiB reads with fio (Debian's), cold: every read lands in a different 512 KiB block,
 * so none can be served by a block fetched for an earlier read. fio's own random offsets cannot
 * promise that (its random map works in `bs` units), so the offsets are planned here and replayed
 * from iolog files: one fio job per unit of queue depth, each doing synchronous O_DIRECT reads
 * (ioengine=psync, direct=1): queue depth N = N jobs with one read in flight each.
 *
 * Pure parts, exported for tests: `planColdReads`, `fioJobFile`, `fioIolog`, `parseFioJson`.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../src/ebs/constants.js';
import { run } from './exec.js';
import { prng } from '../../src/util/prng.js';

/** Deterministic PRNG: the same seed plans the same reads on every run. */
export const seededRandom = prng;

export const READ_SIZE = 4096;


/**
 * `count` offsets of 4 KiB reads over a file of `fileBytes`, each in a different 512 KiB block,
 * at a random 4 KiB-aligned place inside it, in random block order.
 */
export function planColdReads(fileBytes: number, count: number, seed: number): number[] {
  const blocks = Math.floor(fileBytes / BLOCK_SIZE);
  if (count > blocks) throw new RangeError(`cannot place ${count} cold reads in ${blocks} blocks`);
  const rand = seededRandom(seed);
  // Partial Fisher–Yates over block indexes, sparse so a huge file costs nothing.
  const swapped = new Map<number, number>();
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(rand() * (blocks - i));
    const pick = swapped.get(j) ?? j;
    swapped.set(j, swapped.get(i) ?? i);
    const within = Math.floor(rand() * (BLOCK_SIZE / READ_SIZE)) * READ_SIZE;
    offsets.push(pick * BLOCK_SIZE + within);
  }
  return offsets;
}

/** Deals `offsets` round-robin to `jobs` lists. */
export function dealToJobs(offsets: readonly number[], jobs: number): number[][] {
  const out: number[][] = Array.from({ length: jobs }, () => []);
  offsets.forEach((o, i) => out[i % jobs]!.push(o));
  return out.filter((l) => l.length > 0);
}

export function fioIolog(file: string, offsets: readonly number[]): string {
  const lines = ['fio version 2 iolog', `${file} add`, `${file} open`];
  for (const o of offsets) lines.push(`${file} read ${o} ${READ_SIZE}`);
  lines.push(`${file} close`);
  return `${lines.join('\n')}\n`;
}

export function fioJobFile(iologs: readonly string[]): string {
  const lines = [
    '[global]',
    'ioengine=psync',
    'direct=1',
    'thread',
    'group_reporting',
    'replay_no_stall=1',
    'percentile_list=50:90:99:99.9',
  ];
  iologs.forEach((log, i) => lines.push(`[reader${i}]`, `read_iolog=${log}`));
  return `${lines.join('\n')}\n`;
}

export interface RandomReadResult {
  queueDepth: number;
  reads: number;
  iops: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  seconds: number;
}

/** Figures of fio's --output-format=json (group_reporting: one job entry). */
export function parseFioJson(text: string, queueDepth: number): RandomReadResult {
  const start = text.indexOf('{');
  if (start < 0) throw new Error(`fio printed no JSON: ${text.slice(0, 300)}`);
  const doc = JSON.parse(text.slice(start)) as { jobs?: { error?: number; read?: FioDir }[] };
  const job = doc.jobs?.[0];
  if (!job?.read) throw new Error('fio JSON has no read figures');
  if (job.error) throw new Error(`fio reported error ${job.error}`);
  const r = job.read;
  const pct = r.clat_ns?.percentile ?? {};
  const at = (p: string): number => (pct[p] ?? NaN) / 1e6;
  return {
    queueDepth,
    reads: r.total_ios,
    iops: r.iops,
    p50Ms: at('50.000000'),
    p99Ms: at('99.000000'),
    meanMs: (r.lat_ns?.mean ?? NaN) / 1e6,
    maxMs: (r.lat_ns?.max ?? NaN) / 1e6,
    seconds: r.runtime / 1000,
  };
}

interface FioDir {
  total_ios: number;
  iops: number;
  runtime: number;
  clat_ns?: { percentile?: Record<string, number> };
  lat_ns?: { mean: number; max: number };
}

/** Runs the planned reads of `file` at queue depth `jobs` (one fio job per read in flight). */
export async function runColdRandomReads(opts: {
  file: string;
  offsets: readonly number[];
  queueDepth: number;
  scratchDir: string;
  timeoutMs: number;
}): Promise<RandomReadResult> {
  const perJob = dealToJobs(opts.offsets, opts.queueDepth);
  const logs: string[] = [];
  for (let i = 0; i < perJob.length; i++) {
    const log = join(opts.scratchDir, `qd${opts.queueDepth}-reader${i}.iolog`);
    await writeFile(log, fioIolog(opts.file, perJob[i]!));
    logs.push(log);
  }
  const jobFile = join(opts.scratchDir, `qd${opts.queueDepth}.fio`);
  await writeFile(jobFile, fioJobFile(logs));
  const r = await run('fio', ['--output-format=json', jobFile], { timeoutMs: opts.timeoutMs });
  return parseFioJson(r.stdout, opts.queueDepth);
}
