import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { IoError } from '../../../src/fs/io-error.js';
import type { ReadBlockOptions } from '../../../src/store/block-store.js';
import { CacheStore, type CacheSource } from '../../../src/store/cache-store.js';
import { Stats } from '../../../src/util/stats.js';
import { settle } from './fixtures.js';

/** A source whose reads resolve when the test says so (or at once with `auto`). */
class FakeSource implements CacheSource {
  calls: { index: number; priority: string }[] = [];
  zeros = new Set<number>();
  failing = new Set<number>();
  auto = true;
  private pending: (() => void)[] = [];

  isKnownZero(index: number): boolean {
    return this.zeros.has(index);
  }

  readBlock(index: number, opts: ReadBlockOptions = {}): Promise<Buffer | null> {
    this.calls.push({ index, priority: opts.priority ?? 'demand' });
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        if (this.failing.has(index)) reject(new IoError('EIO', `block ${index} failed`));
        else resolve(Buffer.alloc(BLOCK_SIZE, index & 0xff));
      };
      if (this.auto) setImmediate(finish);
      else this.pending.push(finish);
    });
  }

  releaseAll(): void {
    const p = this.pending;
    this.pending = [];
    for (const f of p) f();
  }

  count(index: number): number {
    return this.calls.filter((c) => c.index === index).length;
  }
}

function makeCache(source: FakeSource, blocks: number, extra: Partial<ConstructorParameters<typeof CacheStore>[0]> = {}) {
  const stats = new Stats();
  const cache = new CacheStore({ source, cacheSizeBytes: blocks * BLOCK_SIZE, stats, ...extra });
  return { cache, stats };
}

describe('CacheStore', () => {
  test('the in-flight reserve: twice the prefetch slots plus 4, at most an eighth of the cache', async () => {
    const source = new FakeSource();
    assert.equal(makeCache(source, 1024).cache.capacityBlocks, 1024 - 2 * (16 + 4));
    assert.equal(makeCache(source, 1024, { backgroundConcurrency: 8 }).cache.capacityBlocks, 1024 - 24);
    assert.equal(makeCache(source, 64).cache.capacityBlocks, 64 - 8);
    assert.equal(makeCache(source, 1024, { inFlightReserveBlocks: 0 }).cache.capacityBlocks, 1024);
    // The LRU really stops there: reading more blocks than that keeps exactly capacityBlocks.
    const { cache } = makeCache(source, 256);
    for (let i = 0; i < 300; i++) await cache.readBlock(i);
    assert.equal(cache.cachedBlocks, 256 - 32);
    assert.ok(cache.cachedBytes <= 256 * BLOCK_SIZE - 32 * BLOCK_SIZE);
  });

  test('concurrent reads of one block make one request; later reads are hits', async () => {
    const source = new FakeSource();
    const { cache, stats } = makeCache(source, 8);
    const [a, b, c] = await Promise.all([cache.readBlock(3), cache.readBlock(3), cache.readBlock(3)]);
    assert.equal(source.count(3), 1);
    assert.ok(a === b && b === c && a !== null && a[0] === 3);
    await cache.readBlock(3);
    assert.equal(source.count(3), 1);
    assert.equal(stats.get('cache.hit'), 1);
    assert.equal(stats.get('cache.miss'), 3);
  });

  test('known-zero blocks are neither fetched nor stored', async () => {
    const source = new FakeSource();
    source.zeros.add(7);
    const { cache, stats } = makeCache(source, 8);
    assert.equal(await cache.readBlock(7), null);
    assert.equal(source.calls.length, 0);
    assert.equal(cache.cachedBlocks, 0);
    assert.equal(cache.prefetch(7), 'present');
    assert.equal(source.calls.length, 0);
    assert.equal(stats.get('blocks.zero'), 1);
  });

  test('cached bytes never exceed the cache size', async () => {
    const source = new FakeSource();
    const { cache } = makeCache(source, 4);
    for (let i = 0; i < 40; i++) {
      await cache.readBlock(i % 13);
      assert.ok(cache.cachedBytes <= 4 * BLOCK_SIZE, `cached ${cache.cachedBytes}`);
      assert.ok(cache.cachedBlocks <= 4);
    }
    assert.equal(cache.cachedBlocks, 4);
  });

  test('a cache smaller than one block still reads (single flight, nothing kept)', async () => {
    const source = new FakeSource();
    const { cache } = makeCache(source, 0);
    const [a, b] = await Promise.all([cache.readBlock(1), cache.readBlock(1)]);
    assert.equal(source.count(1), 1);
    assert.ok(a && b && a[0] === 1);
    await cache.readBlock(1);
    assert.equal(source.count(1), 2);
    assert.equal(cache.cachedBytes, 0);
  });

  test('prefetch fills the cache at background priority; a demand read counts one prefetch hit', async () => {
    const source = new FakeSource();
    const { cache, stats } = makeCache(source, 16);
    assert.equal(cache.prefetch(5), 'issued');
    assert.equal(cache.prefetch(5), 'present', 'in flight: no second request');
    for (let i = 0; i < 1000 && !cache.has(5); i++) await settle(); // a loaded machine: wait for it
    assert.deepEqual(source.calls, [{ index: 5, priority: 'background' }]);
    assert.equal(cache.has(5), true);
    assert.equal(cache.prefetch(5), 'present', 'cached: no-op');
    await cache.readBlock(5);
    await cache.readBlock(5);
    assert.equal(source.calls.length, 1);
    assert.equal(stats.get('prefetch.issued'), 1);
    assert.equal(stats.get('prefetch.hit'), 1);
  });

  test('a demand read joining an in-flight prefetch is one request and one prefetch hit', async () => {
    const source = new FakeSource();
    source.auto = false;
    const { cache, stats } = makeCache(source, 16);
    cache.prefetch(9);
    const read = cache.readBlock(9);
    source.releaseAll();
    assert.ok(await read);
    await cache.readBlock(9);
    assert.equal(source.count(9), 1);
    assert.equal(stats.get('prefetch.hit'), 1);
  });

  test('prefetches stay inside the budget and the background concurrency', async () => {
    const source = new FakeSource();
    source.auto = false;
    const { cache } = makeCache(source, 32, { backgroundConcurrency: 2 }); // budget: 8 blocks
    assert.equal(cache.prefetchBudgetBlocks, 8);
    const results = Array.from({ length: 12 }, (_, i) => cache.prefetch(100 + i));
    assert.deepEqual(results.filter((r) => r === 'issued').length, 8);
    assert.equal(results[8], 'full');
    assert.equal(cache.prefetchOutstanding, 8);
    assert.equal(source.calls.length, 2, 'only 2 running');
    // A demand read of a queued block takes it over at once, at demand priority.
    const demand = cache.readBlock(107);
    assert.deepEqual(source.calls[2], { index: 107, priority: 'demand' });
    assert.equal(cache.prefetchOutstanding, 7);
    for (let round = 0; round < 10 && cache.prefetchOutstanding + source.calls.length > 0; round++) {
      source.releaseAll();
      await settle();
    }
    assert.ok(await demand);
    assert.equal(cache.prefetchOutstanding, 0);
    for (let i = 100; i < 108; i++) assert.equal(source.count(i), 1, `block ${i} fetched once`);
    assert.ok(cache.has(100) && cache.has(106));
  });

  test('a failed read rejects, is not cached, and the next read tries again', async () => {
    const source = new FakeSource();
    source.failing.add(4);
    const { cache } = makeCache(source, 8);
    await assert.rejects(cache.readBlock(4), (e: unknown) => e instanceof IoError && e.code === 'EIO');
    assert.equal(cache.prefetch(4), 'issued', 'failed prefetch is harmless');
    while (cache.isInFlight(4)) await settle(); // a condition, not a time: the machine may be loaded
    source.failing.delete(4);
    assert.ok(await cache.readBlock(4));
    assert.equal(source.count(4), 3);
    assert.ok(await cache.readBlock(5));
  });
});
