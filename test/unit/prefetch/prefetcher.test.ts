import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_SIZE, GIB } from '../../../src/ebs/constants.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { Prefetcher } from '../../../src/prefetch/prefetcher.js';
import type { PrefetchResult } from '../../../src/store/cache-store.js';
import { makeVolumeFile, openSnapshotVolume, type OpenedVolume, type VolumeOptions } from '../../../src/store/open-volume.js';
import { FAST_RETRY, modelBytes, noSleep, prng, randomInt, sharedBlocks } from '../store/fixtures.js';

const GET = 'getSnapshotBlock';
const PIECE = 128 * 1024;
// A 1 GiB volume with two allocated runs (where the sequential readers go); holes elsewhere.
const ALLOCATED = [...Array.from({ length: 160 }, (_, i) => i), ...Array.from({ length: 60 }, (_, i) => 1_000 + i)];
const blocks = sharedBlocks(ALLOCATED);

async function withVolume(
  opts: Partial<VolumeOptions>,
  body: (v: OpenedVolume, memory: MemoryEbsApi) => Promise<void>,
  latencyMs = 1,
): Promise<void> {
  const memory = new MemoryEbsApi();
  const id = memory.createCompletedSnapshot(blocks, 1);
  memory.latencyMs = latencyMs;
  const v = await openSnapshotVolume(memory, id, { retryPolicy: FAST_RETRY, sleep: noSleep, backgroundCount: false, ...opts });
  try {
    await body(v, memory);
  } finally {
    v.close();
  }
}

/** Reads blocks [from, to] in 128 KiB pieces, checking every byte; `check` runs after each piece. */
async function readSequential(v: OpenedVolume, from: number, to: number, check?: () => void): Promise<void> {
  const file = makeVolumeFile(v);
  const buf = Buffer.alloc(PIECE);
  for (let pos = from * BLOCK_SIZE; pos < (to + 1) * BLOCK_SIZE; pos += PIECE) {
    assert.equal(await file.read(buf, PIECE, pos), PIECE);
    assert.ok(buf.equals(modelBytes(blocks, GIB, pos, PIECE)), `bytes at ${pos}`);
    check?.();
  }
}

function fetchedIndexes(memory: MemoryEbsApi): number[] {
  return memory.calls.filter((c) => c.op === GET).map((c) => c.index!);
}

describe('Prefetcher', () => {
  test('a sequential reader gets read-ahead: later reads are prefetch hits, each block fetched once', async () => {
    await withVolume({ cacheSizeBytes: 256 * BLOCK_SIZE }, async (v, memory) => {
      await readSequential(v, 0, 47);
      const fetched = fetchedIndexes(memory);
      assert.equal(new Set(fetched).size, fetched.length, 'no block fetched twice');
      assert.ok(v.stats.get('prefetch.issued') > 0);
      assert.ok(v.stats.get('prefetch.hit') >= 30, `prefetch hits ${v.stats.get('prefetch.hit')}`);
      assert.ok(Math.max(...fetched) <= 47 + 64, 'not beyond the read-ahead');
    });
  });

  test('random access does not prefetch', async () => {
    await withVolume({ cacheSizeBytes: 256 * BLOCK_SIZE }, async (v, memory) => {
      const file = makeVolumeFile(v);
      const rand = prng(11);
      const buf = Buffer.alloc(4096);
      for (let i = 0; i < 300; i++) {
        const pos = randomInt(rand, GIB - 4096);
        await file.read(buf, 4096, pos);
        assert.ok(buf.equals(modelBytes(blocks, GIB, pos, 4096)));
      }
      assert.equal(v.stats.get('prefetch.issued'), 0);
      assert.ok(memory.counts(GET) <= 300);
      assert.deepEqual(v.prefetcher.detector.windows().filter((w) => w > 0), [], 'no stream opened a window');
    });
  });

  test('read-ahead is capped by --read-ahead', async () => {
    await withVolume({ cacheSizeBytes: 512 * BLOCK_SIZE, readAheadBytes: 8 * BLOCK_SIZE }, async (v, memory) => {
      await readSequential(v, 100, 140);
      assert.ok(Math.max(...fetchedIndexes(memory)) <= 140 + 8);
      assert.ok(v.stats.get('prefetch.hit') > 0);
    });
  });

  test('a small cache: cached bytes and outstanding prefetches stay in budget', async () => {
    const cacheSizeBytes = 16 * BLOCK_SIZE; // prefetch budget: 4 blocks
    await withVolume({ cacheSizeBytes }, async (v, memory) => {
      let maxOutstanding = 0;
      await readSequential(v, 0, 63, () => {
        assert.ok(v.cache.cachedBytes <= cacheSizeBytes, `cached ${v.cache.cachedBytes}`);
        maxOutstanding = Math.max(maxOutstanding, v.cache.prefetchOutstanding);
      });
      assert.ok(maxOutstanding <= 4, `outstanding ${maxOutstanding}`);
      assert.ok(v.stats.get('prefetch.hit') > 0);
      const fetched = fetchedIndexes(memory);
      assert.equal(new Set(fetched).size, fetched.length, 'read-ahead never evicted before use');
    }, 2);
  });

  test('two interleaved sequential readers both get read-ahead', async () => {
    await withVolume({ cacheSizeBytes: 256 * BLOCK_SIZE, readAheadBytes: 16 * BLOCK_SIZE }, async (v, memory) => {
      const file = makeVolumeFile(v);
      const buf = Buffer.alloc(PIECE);
      const bases = [0, 1_000];
      for (let step = 0; step < 30 * 4; step++) {
        for (const base of bases) {
          const pos = base * BLOCK_SIZE + step * PIECE;
          await file.read(buf, PIECE, pos);
          assert.ok(buf.equals(modelBytes(blocks, GIB, pos, PIECE)));
        }
      }
      const fetched = fetchedIndexes(memory);
      assert.equal(new Set(fetched).size, fetched.length);
      assert.ok(fetched.some((i) => i > 30 && i < 1_000), 'read-ahead for reader A');
      assert.ok(fetched.some((i) => i > 1_030), 'read-ahead for reader B');
      assert.ok(v.stats.get('prefetch.hit') >= 40);
    });
  });

  test('onRead issues each planned block once and stops when the budget is full', () => {
    const issued: number[] = [];
    let room = 10;
    const cache = {
      prefetchBudgetBlocks: 10,
      prefetch(index: number): PrefetchResult {
        if (room === 0) return 'full';
        room--;
        issued.push(index);
        return 'issued';
      },
    };
    const p = new Prefetcher({ cache, totalBlocks: 10_000, readAheadBytes: 64 * BLOCK_SIZE });
    assert.equal(p.detector.maxWindowBlocks, 10, 'capped by the cache budget');
    for (let b = 0; b < 8; b++) p.onRead(b, b);
    assert.equal(issued.length, 10);
    assert.equal(new Set(issued).size, 10);
    room = 100;
    p.onRead(8, 8);
    assert.deepEqual(issued.slice(10), [13, 14, 15, 16, 17, 18], 'resumes after the last issued block');
    p.close();
    p.onRead(9, 9);
    assert.equal(issued.length, 16, 'closed: no more');
  });
});
