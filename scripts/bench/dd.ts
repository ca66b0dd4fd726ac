/**
 * Sequential reads and writes with coreutils dd (bs=1M), the way users measure a disk.
 * `parseDdSummary` (pure) turns dd's closing line into bytes and seconds; the rate is computed
 * from those, not from dd's rounded figure.
 */
import { run } from './exec.js';
import { mbPerSecond } from './stats.js';

export interface Transfer {
  bytes: number;
  seconds: number;
  mbps: number;
}

/** Parses "2147483648 bytes (2.1 GB, 2.0 GiB) copied, 4.51 s, 476 MB/s" (the last such line). */
export function parseDdSummary(stderr: string): Transfer {
  const matches = [...stderr.matchAll(/^(\d+) bytes\b.*copied, ([\d.]+(?:e[-+]?\d+)?) s/gm)];
  const m = matches.at(-1);
  if (!m) throw new Error(`could not find dd's summary in: ${stderr.trim().slice(-300)}`);
  const bytes = Number(m[1]);
  const seconds = Number(m[2]);
  return { bytes, seconds, mbps: mbPerSecond(bytes, seconds) };
}

const C_LOCALE = { ...process.env, LC_ALL: 'C' };

/** Reads `path` to /dev/null with 1 MiB blocks (optionally only `count` MiB from `skipMiB`). */
export async function ddRead(path: string, opts: { timeoutMs: number; countMiB?: number; skipMiB?: number }): Promise<Transfer> {
  const args = [`if=${path}`, 'of=/dev/null', 'bs=1M'];
  if (opts.countMiB !== undefined) args.push(`count=${opts.countMiB}`);
  if (opts.skipMiB !== undefined) args.push(`skip=${opts.skipMiB}`);
  const r = await run('dd', args, { timeoutMs: opts.timeoutMs, env: C_LOCALE });
  return parseDdSummary(r.stderr);
}

/** Writes `countMiB` MiB from `source` into `path` at `seekMiB`, without truncating, fsync at the end. */
export async function ddWrite(source: string, path: string, opts: { countMiB: number; seekMiB?: number; timeoutMs: number }): Promise<Transfer> {
  const args = [`if=${source}`, `of=${path}`, 'bs=1M', `count=${opts.countMiB}`, 'conv=fsync,notrunc', 'iflag=fullblock'];
  if (opts.seekMiB !== undefined) args.push(`seek=${opts.seekMiB}`);
  const r = await run('dd', args, { timeoutMs: opts.timeoutMs, env: C_LOCALE });
  return parseDdSummary(r.stderr);
}
