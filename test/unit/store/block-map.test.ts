import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { EbsError, Reason } from '../../../src/ebs/errors.js';
import { RequestLimiter } from '../../../src/ebs/limiter.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { BlockMap, type BlockMapOptions } from '../../../src/store/block-map.js';
import { Stats } from '../../../src/util/stats.js';
import { FAST_RETRY, noSleep, sharedBlocks, SpyApi } from './fixtures.js';

const SEG = 1_024;

function setup(indexes: number[], volumeSizeGiB: number, extra: Partial<BlockMapOptions> = {}) {
  const memory = new MemoryEbsApi();
  const snapshotId = memory.createCompletedSnapshot(sharedBlocks(indexes), volumeSizeGiB);
  const api = new SpyApi(memory);
  const stats = new Stats();
  const map = new BlockMap({
    api,
    snapshotId,
    volumeSizeGiB,
    stats,
    listLimiter: new RequestLimiter({ maxConcurrency: 4 }),
    segmentBlocks: SEG,
    retryPolicy: FAST_RETRY,
    sleep: noSleep,
    ...extra,
  });
  /** The token the service gives for a block right now (listed directly). */
  const tokenOf = async (index: number): Promise<string | undefined> => {
    const page = await memory.listSnapshotBlocks(snapshotId, { startingBlockIndex: index, maxResults: 100 });
    return page.blocks.find((b) => b.index === index)?.token;
  };
  return { memory, api, map, stats, snapshotId, tokenOf };
}

const range = (from: number, n: number, step = 1) => Array.from({ length: n }, (_, i) => from + i * step);

describe('BlockMap', () => {
  test('lists lazily, from the start of the segment asked for', async () => {
    const { api, map, tokenOf } = setup([...range(5_000, 1_000), 20_000], 16);
    assert.equal(api.lists.length, 0, 'nothing listed up front');
    assert.equal(await map.lookup(5_500), await tokenOf(5_500));
    assert.deepEqual(api.lists, [{ startingBlockIndex: 5 * SEG, maxResults: 10_000 }]);
    assert.equal(await map.lookup(5_200), await tokenOf(5_200), 'same segment: no call');
    assert.equal(api.lists.length, 1);
    assert.equal(await map.lookup(5_100), await tokenOf(5_100), 'segment 4 was only partly covered');
    assert.deepEqual(api.lists[1], { startingBlockIndex: 4 * SEG, maxResults: 10_000 });
    assert.equal(await map.lookup(3_000), null);
    assert.equal(await map.lookup(4_500), null);
  });

  test('a page proves the segments it passes over: holes cost no further calls', async () => {
    const { api, map } = setup([10, 20_000], 16); // 32,768 blocks, 32 segments
    assert.ok(await map.lookup(10));
    assert.equal(api.lists.length, 1);
    for (let seg = 1; seg < 32; seg++) {
      if (seg === Math.floor(20_000 / SEG)) continue;
      assert.equal(map.peek(seg * SEG + 7), null, `segment ${seg} known empty`);
      assert.equal(await map.lookup(seg * SEG + 7), null);
    }
    assert.equal(api.lists.length, 1);
    assert.ok(await map.lookup(20_000));
    assert.ok(api.lists.length <= 2);
    assert.equal(await map.lookup(20_001), null);
    assert.ok(api.lists.length <= 2);
  });

  test('a dense segment is listed with as many pages as it needs', async () => {
    const { api, map, tokenOf } = setup(range(0, 25_000), 16, { segmentBlocks: 32_768 });
    assert.equal(await map.lookup(24_999), await tokenOf(24_999));
    assert.equal(api.lists.length, 3);
    assert.ok(api.lists[1]!.nextToken && api.lists[2]!.nextToken, 'pages after the first follow NextToken');
    assert.equal(await map.lookup(0), await tokenOf(0));
    assert.equal(await map.lookup(25_000), null);
    assert.equal(api.lists.length, 3);
  });

  test('concurrent lookups of one segment share one listing', async () => {
    const { api, map } = setup(range(0, 2_000, 3), 4);
    const tokens = await Promise.all(range(0, 40, 3).map((i) => map.lookup(i)));
    assert.ok(tokens.every((t) => typeof t === 'string'));
    assert.equal(api.lists.length, 1);
  });

  test('an expired page token restarts from the first index not yet known', async () => {
    const { api, map, tokenOf } = setup(range(0, 25_000), 16, { segmentBlocks: 32_768 });
    let failed = false;
    api.beforeList = (opts) => {
      if (opts.nextToken && !failed) {
        failed = true;
        throw new EbsError('ValidationException', 'page token expired', { status: 400, reason: Reason.INVALID_PAGE_TOKEN });
      }
    };
    assert.equal(await map.lookup(24_000), await tokenOf(24_000));
    assert.equal(await map.lookup(10_000), await tokenOf(10_000));
    assert.ok(failed);
    assert.deepEqual(api.lists[2], { startingBlockIndex: 10_000, maxResults: 10_000 });
  });

  test('tokens are re-listed before they expire', async () => {
    let now = 1_000_000;
    const { api, map } = setup([1, 2, 3], 1, { now: () => now });
    let ttlMs = 60 * 60_000;
    api.mapPage = (page) => ({ ...page, expiryTime: new Date(now + ttlMs) });
    await map.lookup(1);
    assert.equal(api.lists.length, 1);
    now += 50 * 60_000;
    await map.lookup(2);
    assert.equal(api.lists.length, 1, 'far from expiry: cached');
    now += 6 * 60_000; // 4 minutes before expiry
    assert.equal(map.peek(2), undefined);
    await map.lookup(2);
    assert.equal(api.lists.length, 2, 'within 5 minutes of expiry: re-listed');
    // A short TTL refreshes at 90% of it.
    ttlMs = 60_000;
    now += 60 * 60_000;
    await map.lookup(3);
    assert.equal(api.lists.length, 3);
    now += 50_000;
    await map.lookup(3);
    assert.equal(api.lists.length, 3);
    now += 5_000;
    await map.lookup(3);
    assert.equal(api.lists.length, 4);
  });

  test('invalidate re-lists only when the refused token is still the current one', async () => {
    const { api, map } = setup([7, 8], 1);
    const token = (await map.lookup(7))!;
    map.invalidate(7, 'some-older-token');
    await map.lookup(7);
    assert.equal(api.lists.length, 1);
    map.invalidate(7, token);
    assert.equal(map.peek(7), undefined);
    await map.lookup(7);
    assert.equal(api.lists.length, 2);
  });

  test('held tokens are bounded by maxSegments whatever the volume touched', async () => {
    const { map } = setup(range(0, 40, SEG), 32, { maxSegments: 4 });
    for (let seg = 0; seg < 40; seg++) {
      assert.ok(await map.lookup(seg * SEG));
      assert.ok(map.cachedSegments <= 4, `holding ${map.cachedSegments}`);
    }
  });

  test('list failures reach the caller unchanged and the map stays usable', async () => {
    const { memory, map } = setup([5], 1);
    const denied = new EbsError('AccessDeniedException', 'denied', { status: 403 });
    memory.injectFailure('listSnapshotBlocks', denied, 1);
    await assert.rejects(map.lookup(5), (e: unknown) => e === denied);
    assert.ok(await map.lookup(5));
  });

  test('throttled listings are retried', async () => {
    const { memory, map, stats } = setup([5], 1);
    memory.injectFailure('listSnapshotBlocks', new EbsError('RequestThrottledException', 'slow down', { status: 400 }), 2);
    assert.ok(await map.lookup(5));
    assert.equal(stats.get('ebs.list.retries'), 2);
    assert.equal(stats.get('ebs.list.requests'), 3);
  });

  test('noteEmpty learns empty segments from a covering listing', () => {
    const { map } = setup([5], 4); // 8 segments
    map.noteEmpty({ from: 0, to: 8 * SEG - 1, blocks: [{ index: 5, token: 't' }] });
    assert.equal(map.peek(5), undefined, 'segment 0 has a block: still unknown');
    for (let seg = 1; seg < 8; seg++) assert.equal(map.peek(seg * SEG), null);
    map.noteEmpty({ from: 100, to: 200, blocks: [] });
    assert.equal(map.peek(150), undefined, 'partly covered segment: not learned');
  });

  test('indexes outside the volume are refused', async () => {
    const { map } = setup([5], 1);
    await assert.rejects(map.lookup(2_048), RangeError);
    await assert.rejects(map.lookup(-1), RangeError);
  });
});
