import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_SIZE, BLOCKS_PER_GIB } from '../../../src/ebs/constants.js';
import { EbsError } from '../../../src/ebs/errors.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { backgroundSlots, makeVolumeFile, openSnapshotVolume } from '../../../src/store/open-volume.js';
import { FAST_RETRY, noSleep, randomBlocks, settle, SpyApi, SyntheticSnapshotApi } from './fixtures.js';

const GET = 'getSnapshotBlock';
const fast = { retryPolicy: FAST_RETRY, openRetryPolicy: FAST_RETRY, sleep: noSleep };

describe('openSnapshotVolume', () => {
  test('open errors surface as the EbsError the API gave, after one call', async () => {
    const memory = new MemoryEbsApi();
    const api = new SpyApi(memory);
    await assert.rejects(openSnapshotVolume(api, 'snap-0123456789abcdef0', fast), (e: unknown) => {
      return e instanceof EbsError && e.type === 'ResourceNotFoundException';
    });
    assert.equal(api.lists.length, 1);
    const id = memory.createCompletedSnapshot(randomBlocks([0]), 1);
    const denied = new EbsError('AccessDeniedException', 'no', { status: 403 });
    memory.injectFailure('listSnapshotBlocks', denied, 1);
    await assert.rejects(openSnapshotVolume(api, id, fast), (e: unknown) => e === denied);
  });

  test('request counting: twice read fetches once; concurrent reads one request; holes none', async () => {
    const memory = new MemoryEbsApi();
    const blocks = randomBlocks([0, 1, 2, 3, 10]);
    const v = await openSnapshotVolume(memory, memory.createCompletedSnapshot(blocks, 1), { ...fast, backgroundCount: false });
    try {
      const file = makeVolumeFile(v);
      const buf = Buffer.alloc(4 * BLOCK_SIZE);
      await file.read(buf, buf.length, 0);
      const afterFirst = memory.counts(GET);
      assert.ok(afterFirst >= 4 && afterFirst <= 5);
      await file.read(buf, buf.length, 0);
      assert.equal(memory.counts(GET), afterFirst, 'second read of the region: cached');
      const small = () => file.read(Buffer.alloc(4096), 4096, 10 * BLOCK_SIZE + 8192);
      await Promise.all([small(), small(), small(), small()]);
      assert.equal(memory.calls.filter((c) => c.op === GET && c.index === 10).length, 1);
      const before = memory.counts(GET);
      await file.read(buf, buf.length, 100 * BLOCK_SIZE);
      assert.ok(buf.every((b) => b === 0));
      assert.equal(memory.counts(GET), before, 'a hole fetches nothing');
    } finally {
      v.close();
    }
  });

  describe('a 16 TiB sparse snapshot with 100,000 blocks', () => {
    const VOLUME_GIB = 16_384;
    const TOTAL = VOLUME_GIB * BLOCKS_PER_GIB;
    const STEP = Math.floor(TOTAL / 100_000);
    const indexes = Array.from({ length: 100_000 }, (_, k) => k * STEP);
    // Computed on the fly: 100,000 stored blocks would be 50 GiB.
    const synthetic = new SyntheticSnapshotApi(VOLUME_GIB, indexes);

    test('opens with one list call and reads near the end with few', async () => {
      const api = new SpyApi(synthetic);
      const v = await openSnapshotVolume(api, synthetic.snapshotId, { ...fast, backgroundCount: false });
      try {
        assert.ok(api.lists.length <= 2, `open listed ${api.lists.length} times`);
        assert.equal(v.volumeSizeGiB, VOLUME_GIB);
        assert.equal(v.sizeBytes, VOLUME_GIB * 1024 ** 3);
        const file = makeVolumeFile(v);
        const last = indexes[indexes.length - 1]!;
        const buf = Buffer.alloc(8192);
        assert.equal(await file.read(buf, 8192, last * BLOCK_SIZE + 100), 8192);
        assert.ok(buf.equals(SyntheticSnapshotApi.content(last).subarray(100, 8292)));
        assert.equal(await file.read(buf, 8192, (TOTAL - 1) * BLOCK_SIZE), 8192);
        assert.ok(buf.every((b) => b === 0), 'the last block is a hole');
        assert.ok(api.lists.length <= 3, `listed ${api.lists.length} times`);
        assert.ok(api.lists.every((l) => l.maxResults === 10_000));
        assert.deepEqual(api.gets, [last]);
        assert.ok(v.blockMap.cachedSegments <= 16);
      } finally {
        v.close();
      }
    });

    test('the background count reaches 100,000 and does not hold the listing', async () => {
      const api = new SpyApi(synthetic);
      const v = await openSnapshotVolume(api, synthetic.snapshotId, fast);
      try {
        assert.ok(v.allocatedBlocks() >= 0 && v.allocatedBlocks() <= 100_000);
        assert.equal(await v.counter.whenDone(), 100_000);
        assert.equal(v.allocatedBlocks(), 100_000);
        assert.equal(makeVolumeFile(v).allocatedBlocks(), 100_000);
        assert.ok(v.counter.done);
        assert.ok(api.lists.length <= 12, `${api.lists.length} list calls`);
        assert.ok(v.blockMap.cachedSegments <= 16);
        // The count also taught the map where the holes are: a hole in a far segment needs no call.
        const before = api.lists.length;
        assert.equal(await v.reader.readBlock(TOTAL - 1), null);
        assert.equal(api.lists.length, before);
      } finally {
        v.close();
      }
    });
  });

  test('close stops the background count', async () => {
    const synthetic = new SyntheticSnapshotApi(64, Array.from({ length: 30_000 }, (_, k) => k * 3));
    synthetic.latencyMs = 20;
    const api = new SpyApi(synthetic);
    const v = await openSnapshotVolume(api, synthetic.snapshotId, fast);
    v.close();
    await v.counter.whenDone();
    await settle();
    const after = api.lists.length;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(api.lists.length, after, 'no listing after close');
    assert.equal(v.counter.done, false);
    assert.ok(v.allocatedBlocks() < 30_000);
  });

  test('prefetches leave slots for demand reads', () => {
    assert.equal(backgroundSlots(64), 60);
    assert.equal(backgroundSlots(8), 6);
    assert.equal(backgroundSlots(1), 1);
    for (const n of [3, 16, 100]) assert.ok(backgroundSlots(n) < n);
  });
});
