/**
 * Shared bits of the transfer unit tests: temp dirs, image files written block by block, fast
 * retry policies, and EbsApi wrappers that change what MemoryEbsApi does (small pages, tokens
 * expiring after the first listing, concurrency counting).
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EbsApi, ListPageOptions } from '../../../src/ebs/api.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import type { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import type { RetryPolicy } from '../../../src/ebs/retry.js';

export const FAST: RetryPolicy = { maxAttempts: 8, baseDelayMs: 1, maxDelayMs: 2, budgetMs: 60_000 };
export const noSleep = async (): Promise<void> => undefined;

export async function tempDir(prefix = 'ebsmount-transfer-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function filled(byte: number, len = BLOCK_SIZE): Buffer {
  const b = Buffer.alloc(len, byte);
  b.writeUInt32LE((0xdeadbeef ^ byte) >>> 0, 17); // never a uniform block, even for byte 0
  return b;
}

/** Writes a sparse image of `sizeBytes` with `blocks` at their indexes (last may be partial). */
export async function writeImage(path: string, sizeBytes: number, blocks: Map<number, Buffer>): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(sizeBytes);
    for (const [i, b] of blocks) {
      const len = Math.min(b.length, sizeBytes - i * BLOCK_SIZE);
      await fh.write(b, 0, len, i * BLOCK_SIZE);
    }
  } finally {
    await fh.close();
  }
}

/** Pages of at most `maxResults` blocks whatever the caller asks. */
export function smallPages(api: MemoryEbsApi, maxResults = 100): EbsApi {
  return new Proxy(api, {
    get(target, prop, recv) {
      if (prop === 'listSnapshotBlocks') {
        return (id: string, o: ListPageOptions = {}) => target.listSnapshotBlocks(id, { ...o, maxResults });
      }
      if (prop === 'listChangedBlocks') {
        return (a: string | undefined, b: string, o: ListPageOptions = {}) => target.listChangedBlocks(a, b, { ...o, maxResults });
      }
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Every token handed out by the first listing stops working right after it. */
export function expireAfterFirstList(api: MemoryEbsApi): EbsApi {
  let lists = 0;
  return new Proxy(api, {
    get(target, prop, recv) {
      if (prop === 'listSnapshotBlocks') {
        return async (id: string, o?: ListPageOptions) => {
          const page = await target.listSnapshotBlocks(id, o);
          if (lists++ === 0) target.expireTokens();
          return page;
        };
      }
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Counts the most calls of `op` in flight at once. */
export function countingConcurrency(api: MemoryEbsApi, op: keyof EbsApi): { api: EbsApi; max: () => number } {
  let cur = 0;
  let max = 0;
  const wrapped = new Proxy(api, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv);
      if (typeof v !== 'function') return v;
      if (prop !== op) return v.bind(target);
      return async (...args: unknown[]) => {
        cur++;
        max = Math.max(max, cur);
        try {
          return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          cur--;
        }
      };
    },
  });
  return { api: wrapped, max: () => max };
}
