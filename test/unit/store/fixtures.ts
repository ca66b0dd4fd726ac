/**
 * Shared fixtures of the read-path unit tests: a seeded PRNG, snapshot contents with a byte model
 * to compare reads against, and retry policies that make fault tests fast.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import type { BlockData, BlockPage, EbsApi, ListPageOptions } from '../../../src/ebs/api.js';
import type { RetryPolicy } from '../../../src/ebs/retry.js';
import { prng } from '../../../src/util/prng.js';

export { prng };


export function randomInt(rand: () => number, maxExclusive: number): number {
  return Math.floor(rand() * maxExclusive);
}

/** Blocks of random content at the given indexes. */
export function randomBlocks(indexes: Iterable<number>): Map<number, Buffer> {
  const blocks = new Map<number, Buffer>();
  for (const i of indexes) blocks.set(i, randomBytes(BLOCK_SIZE));
  return blocks;
}

/** The bytes [position, position+length) of a volume whose blocks are `blocks` (zeros elsewhere). */
export function modelBytes(blocks: Map<number, Buffer>, sizeBytes: number, position: number, length: number): Buffer {
  const end = Math.min(sizeBytes, position + length);
  const out = Buffer.alloc(Math.max(0, end - position));
  for (let off = position; off < end; ) {
    const index = Math.floor(off / BLOCK_SIZE);
    const inBlock = off - index * BLOCK_SIZE;
    const n = Math.min(BLOCK_SIZE - inBlock, end - off);
    blocks.get(index)?.copy(out, off - position, inBlock, inBlock + n);
    off += n;
  }
  return out;
}

/** Retries quickly: for fault-injection tests with a fake sleep. */
export const FAST_RETRY: RetryPolicy = { maxAttempts: 8, baseDelayMs: 1, maxDelayMs: 2, budgetMs: 60_000 };
/** Gives up after 3 attempts. */
export const SHORT_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2, budgetMs: 60_000 };
export const noSleep = async (): Promise<void> => {};

/** Waits until `cond()` holds, polling; fails after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * Lets queued promise callbacks, timers of 0 ms and setImmediate callbacks (the fake sources
 * answer on setImmediate) run. A timer alone is not enough: on a loaded machine it can fire
 * before an immediate queued earlier (when the loop was in its check phase), so the timer is
 * followed by turns of setImmediate, which run after every immediate queued before them.
 */
export async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 5));
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

/**
 * An EbsApi that forwards to another and records/alters list and get calls: what the tests count
 * and where they inject faults the in-memory double has no hook for.
 */
export class SpyApi implements EbsApi {
  lists: Omit<ListPageOptions, 'signal'>[] = [];
  gets: number[] = [];
  beforeList?: (opts: ListPageOptions) => void;
  mapPage?: (page: BlockPage, opts: ListPageOptions) => BlockPage;
  mapBlock?: (data: BlockData, index: number) => BlockData;

  constructor(readonly inner: EbsApi) {}

  async listSnapshotBlocks(snapshotId: string, opts: ListPageOptions = {}): Promise<BlockPage> {
    const { signal: _signal, ...recorded } = opts;
    this.lists.push(recorded);
    this.beforeList?.(opts);
    const page = await this.inner.listSnapshotBlocks(snapshotId, opts);
    return this.mapPage ? this.mapPage(page, opts) : page;
  }

  async getSnapshotBlock(snapshotId: string, index: number, token: string, opts?: { signal?: AbortSignal }): Promise<BlockData> {
    this.gets.push(index);
    const data = await this.inner.getSnapshotBlock(snapshotId, index, token, opts);
    return this.mapBlock ? this.mapBlock(data, index) : data;
  }

  listChangedBlocks(...args: Parameters<EbsApi['listChangedBlocks']>): ReturnType<EbsApi['listChangedBlocks']> {
    return this.inner.listChangedBlocks(...args);
  }
  startSnapshot(...args: Parameters<EbsApi['startSnapshot']>): ReturnType<EbsApi['startSnapshot']> {
    return this.inner.startSnapshot(...args);
  }
  putSnapshotBlock(...args: Parameters<EbsApi['putSnapshotBlock']>): ReturnType<EbsApi['putSnapshotBlock']> {
    return this.inner.putSnapshotBlock(...args);
  }
  completeSnapshot(...args: Parameters<EbsApi['completeSnapshot']>): ReturnType<EbsApi['completeSnapshot']> {
    return this.inner.completeSnapshot(...args);
  }
}

/** Every index, with one shared buffer per distinct pattern: large sparse snapshots cheaply. */
export function sharedBlocks(indexes: Iterable<number>): Map<number, Buffer> {
  const patterns = [randomBytes(BLOCK_SIZE), randomBytes(BLOCK_SIZE), randomBytes(BLOCK_SIZE)];
  const blocks = new Map<number, Buffer>();
  for (const i of indexes) blocks.set(i, patterns[i % patterns.length]!);
  return blocks;
}

/**
 * A completed snapshot computed on the fly (no storage): blocks at `indexes` (ascending), content
 * derived from the index. For volumes far larger than memory (16 TiB with 100,000 blocks).
 * Lists like the service: ascending, MaxResults per page, NextToken until the end.
 */
export class SyntheticSnapshotApi implements EbsApi {
  readonly snapshotId = 'snap-00000000000000beef';
  latencyMs = 0;

  constructor(
    readonly volumeSizeGiB: number,
    readonly indexes: readonly number[],
  ) {}

  static content(index: number): Buffer {
    const data = Buffer.alloc(BLOCK_SIZE, index % 251);
    data.writeUInt32BE(index >>> 0, 0);
    return data;
  }

  async listSnapshotBlocks(snapshotId: string, opts: ListPageOptions = {}): Promise<BlockPage> {
    await this.delay();
    this.check(snapshotId);
    let pos = opts.nextToken ? Number(opts.nextToken.slice(2)) : this.firstAtOrAfter(opts.startingBlockIndex ?? 0);
    const max = opts.maxResults ?? 10_000;
    const blocks = [];
    for (; pos < this.indexes.length && blocks.length < max; pos++) {
      blocks.push({ index: this.indexes[pos]!, token: `t:${this.indexes[pos]}` });
    }
    return {
      blocks,
      nextToken: pos < this.indexes.length ? `n:${pos}` : undefined,
      expiryTime: new Date(Date.now() + 3_600_000),
      volumeSizeGiB: this.volumeSizeGiB,
      blockSize: BLOCK_SIZE,
    };
  }

  async getSnapshotBlock(snapshotId: string, index: number, token: string): Promise<BlockData> {
    await this.delay();
    this.check(snapshotId);
    if (token !== `t:${index}`) throw new Error(`wrong token for block ${index}`);
    const data = SyntheticSnapshotApi.content(index);
    return { data, checksum: createHash('sha256').update(data).digest('base64'), checksumAlgorithm: 'SHA256', dataLength: BLOCK_SIZE };
  }

  listChangedBlocks(): never {
    throw new Error('not supported');
  }
  startSnapshot(): never {
    throw new Error('not supported');
  }
  putSnapshotBlock(): never {
    throw new Error('not supported');
  }
  completeSnapshot(): never {
    throw new Error('not supported');
  }

  private firstAtOrAfter(start: number): number {
    let lo = 0;
    let hi = this.indexes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.indexes[mid]! < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private check(snapshotId: string): void {
    if (snapshotId !== this.snapshotId) throw new Error(`unknown snapshot ${snapshotId}`);
  }

  private delay(): Promise<void> {
    return this.latencyMs > 0 ? new Promise((r) => setTimeout(r, this.latencyMs)) : Promise.resolve();
  }
}
