/**
 * Pure arithmetic of the benchmark: percentiles, rates, the upstream ceiling formula, and reading
 * one counter out of whatever shape `ebsmount status --json` gives.
 *
 * Rates are in MB/s (10^6 bytes per second), the unit dd prints.
 */
import { BLOCK_SIZE } from '../../src/ebs/constants.js';

export const MB = 1e6;

/** Percentile `p` (0–100) of `values`, linear interpolation between closest ranks. NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export function mbPerSecond(bytes: number, seconds: number): number {
  return seconds > 0 ? bytes / seconds / MB : NaN;
}

/**
 * What the EBS side allows, bytes/s: every request moves one block, at most `rateLimit` requests
 * per second, and at most `concurrency` requests in flight each taking `latencyMs`:
 * min(rate × block, concurrency × block / latency). At 0 ms only the rate limit bounds it.
 */
export function upstreamCeiling(opts: { rateLimit: number; concurrency: number; latencyMs: number; blockSize?: number }): number {
  const block = opts.blockSize ?? BLOCK_SIZE;
  const byRate = opts.rateLimit * block;
  if (opts.latencyMs <= 0) return byRate;
  return Math.min(byRate, (opts.concurrency * block) / (opts.latencyMs / 1000));
}

/** a / b as a percentage; NaN when either is missing or b is 0. */
export function percentOf(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return (a / b) * 100;
}

/**
 * One counter from a status document, whatever its shape: a flat dotted key (`{"cache.hit": 3}`),
 * nested objects (`{"cache": {"hit": 3}}`), either under a `stats` property or at the top.
 * undefined when absent or not a number.
 */
export function statValue(doc: unknown, key: string): number | undefined {
  const roots: unknown[] = [];
  if (isObject(doc)) {
    if (isObject(doc.stats)) roots.push(doc.stats);
    if (isObject(doc.counters)) roots.push(doc.counters);
    roots.push(doc);
  }
  for (const root of roots) {
    const flat = (root as Record<string, unknown>)[key];
    if (typeof flat === 'number') return flat;
    let node: unknown = root;
    for (const part of key.split('.')) node = isObject(node) ? node[part] : undefined;
    if (typeof node === 'number') return node;
  }
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A counter of `ebsmount status --json`: like statValue, but a counter absent from a document that
 * has a `stats` object is 0 (the daemon lists only counters that moved). undefined when there is
 * no document (status failed) or the value is not a number.
 */
export function counterValue(doc: unknown, key: string): number | undefined {
  const v = statValue(doc, key);
  if (v !== undefined) return v;
  return isObject(doc) && isObject(doc.stats) && !(key in doc.stats) ? 0 : undefined;
}
