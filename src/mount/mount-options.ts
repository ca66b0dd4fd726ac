/**
 * MountConfig: the validated settings of one mount, from the CLI's argv. Pure parsing; every
 * bad value is a one-line UserError.
 *
 * Sizes accept plain bytes or a binary suffix: 512M, 512MiB, 1G, 64k (K/M/G/T, powers of 1024).
 * Tags are `key=value` (repeatable); the key is non-empty, the value may be empty. Concurrency
 * options stop at MAX_CONCURRENCY; the cache size is from one block to the machine's memory.
 */
import { UserError } from '../errors/user-error.js';
import type { Tag } from '../ebs/api.js';
import { BLOCK_SIZE } from '../ebs/constants.js';

export interface MountConfig {
  /** The first (or only) snapshot. */
  snapshotId: string;
  /** Every snapshot of a multi-snapshot mount, in the order given (default: [snapshotId]). */
  snapshotIds?: string[];
  mountpoint: string;
  foreground: boolean;
  cacheSizeBytes: number;
  readAheadBytes: number;
  maxConcurrency: number;
  requestRate: number;
  allowOther: boolean;
  logFile: string | null;
  logLevel: string;
  writable: boolean;
  description?: string;
  tags: Tag[];
  journalDir?: string;
  uploadConcurrency: number;
  discard: boolean;
  /** Serve a file per partition next to the image (default true; --no-partitions). */
  partitions?: boolean;
  /** `--disk-cache DIR` (absolute), or undefined: no disk cache. */
  diskCacheDir?: string;
  /** `--disk-cache-size` (default 10 GiB). */
  diskCacheSizeBytes?: number;
  /** `--base SNAP`: the lineage base. */
  base?: string;
}

export const MOUNT_DEFAULTS = {
  cacheSize: '512M',
  readAhead: '32M',
  maxConcurrency: 64,
  requestRate: 1000,
  uploadConcurrency: 64,
  logLevel: 'info',
  diskCacheSize: '10G',
} as const;

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseSize(value: unknown, name: string): number {
  const s = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(s);
  if (!m) throw new UserError(`--${name} '${s}' is not a size (use bytes or a suffix: 512M, 1G)`, 2);
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(bytes)) throw new UserError(`--${name} '${s}' is too large`, 2);
  return bytes;
}

/** The most requests in flight any concurrency option accepts (more is a typo, not a plan). */
export const MAX_CONCURRENCY = 1024;

export function parsePositiveInt(value: unknown, name: string, max?: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || (max !== undefined && n > max)) {
    const range = max === undefined ? 'a positive integer' : `an integer from 1 to ${max}`;
    throw new UserError(`--${name} must be ${range}, not '${String(value)}'`, 2);
  }
  return n;
}

/**
 * The cache size: at least one 512 KiB block (the cache holds whole blocks; 0 would mean every
 * read fetches again), at most `memoryBytes` (the cache lives in memory; the figure is this
 * machine's memory, or the cgroup's limit).
 */
export function parseCacheSize(value: unknown, memoryBytes: number): number {
  const bytes = parseSize(value, 'cache-size');
  if (bytes < BLOCK_SIZE) {
    throw new UserError(`--cache-size must be at least 512K (one 512 KiB block: the cache holds whole blocks), not '${String(value)}'`, 2);
  }
  if (bytes > memoryBytes) {
    throw new UserError(`--cache-size ${String(value)} is more than the memory this machine allows (${formatGiB(memoryBytes)}); the cache lives in memory: choose less, e.g. ${MOUNT_DEFAULTS.cacheSize}`, 2);
  }
  return bytes;
}

function formatGiB(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

export function parseTags(values: unknown): Tag[] {
  if (values === undefined || values === null) return [];
  const list = Array.isArray(values) ? values : [values];
  return list.map((v) => {
    const s = String(v);
    const eq = s.indexOf('=');
    if (eq <= 0) throw new UserError(`--tag '${s}' must be key=value`, 2);
    return { key: s.slice(0, eq), value: s.slice(eq + 1) };
  });
}

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export function parseLogLevel(value: unknown): string {
  const s = String(value ?? MOUNT_DEFAULTS.logLevel).toLowerCase();
  if (!LEVELS.has(s)) throw new UserError(`--log-level must be one of ${[...LEVELS].join(', ')}`, 2);
  return s;
}
