import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { BLOCK_SIZE, GIB } from '../../../src/ebs/constants.js';
import { EbsError } from '../../../src/ebs/errors.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import type { RetryPolicy } from '../../../src/ebs/retry.js';
import { IoError } from '../../../src/fs/io-error.js';
import { makeVolumeFile, openSnapshotVolume, type OpenedVolume } from '../../../src/store/open-volume.js';
import { createLogger } from '../../../src/util/log.js';
import { FAST_RETRY, modelBytes, noSleep, randomBlocks, SHORT_RETRY, SpyApi } from './fixtures.js';

const GET = 'getSnapshotBlock';
const LIST = 'listSnapshotBlocks';
const ALLOCATED = Array.from({ length: 16 }, (_, i) => i);

describe('reads under faults', () => {
  const memory = new MemoryEbsApi();
  const blocks = randomBlocks(ALLOCATED);
  let snapshotId: string;

  before(() => {
    snapshotId = memory.createCompletedSnapshot(blocks, 1);
  });

  async function withVolume(
    body: (v: OpenedVolume) => Promise<void>,
    opts: { retryPolicy?: RetryPolicy; api?: SpyApi; logger?: pino.Logger } = {},
  ): Promise<void> {
    const v = await openSnapshotVolume(opts.api ?? memory, snapshotId, {
      cacheSizeBytes: 64 * BLOCK_SIZE,
      retryPolicy: opts.retryPolicy ?? FAST_RETRY,
      sleep: noSleep,
      backgroundCount: false,
      logger: opts.logger,
    });
    try {
      await body(v);
    } finally {
      v.close();
    }
  }

  async function readAllAndCompare(v: OpenedVolume, from = 0, to = 15): Promise<void> {
    const file = makeVolumeFile(v);
    const length = (to - from + 1) * BLOCK_SIZE;
    const buf = Buffer.alloc(length);
    assert.equal(await file.read(buf, length, from * BLOCK_SIZE), length);
    assert.ok(buf.equals(modelBytes(blocks, GIB, from * BLOCK_SIZE, length)), 'bytes equal the model');
  }

  test('throttling is retried and counted', async () => {
    await withVolume(async (v) => {
      memory.injectFailure(GET, new EbsError('RequestThrottledException', 'Rate exceeded', { status: 400 }), 3);
      await readAllAndCompare(v);
      assert.equal(v.stats.get('ebs.throttles'), 3);
      assert.equal(v.stats.get('ebs.get.retries'), 3);
      assert.equal(v.stats.get('ebs.get.requests'), 16 + 3);
    });
  });

  test('500s and connection resets are retried', async () => {
    await withVolume(async (v) => {
      memory.injectFailure(GET, new EbsError('InternalServerException', 'oops', { status: 500 }), 2);
      memory.injectFailure(GET, new EbsError('NetworkError', 'ECONNRESET'), 2);
      await readAllAndCompare(v);
      assert.equal(v.stats.get('ebs.get.retries'), 4);
      assert.equal(v.stats.get('ebs.throttles'), 0);
    });
  });

  test('corrupted bodies are detected, counted and fetched again', async () => {
    await withVolume(async (v) => {
      memory.corruptNext(GET, 3);
      await readAllAndCompare(v);
      assert.equal(v.stats.get('ebs.checksum.mismatch'), 3);
      assert.equal(v.stats.get('ebs.get.retries'), 3);
    });
  });

  test('a wrong DataLength or short body counts as a mismatch', async () => {
    const api = new SpyApi(memory);
    let bad = 2;
    api.mapBlock = (d) => (bad-- > 0 ? { ...d, dataLength: 4096, data: d.data.subarray(0, 4096) } : d);
    await withVolume(async (v) => {
      await readAllAndCompare(v, 0, 3);
      assert.equal(v.stats.get('ebs.checksum.mismatch'), 2);
    }, { api });
  });

  test('expired block tokens re-list the segment once and the reads succeed', async () => {
    const api = new SpyApi(memory);
    await withVolume(async (v) => {
      await readAllAndCompare(v, 0, 3);
      const lists = api.lists.length;
      memory.expireTokens();
      await readAllAndCompare(v, 4, 15); // 12 concurrent reads with stale tokens
      assert.equal(api.lists.length, lists + 1, 'one re-listing for all of them');
    }, { api });
  });

  test('a block failing beyond the budget fails that read only, with EIO, logged without tokens', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger({ level: 'warn', destination: sink });
    const tokens = (await memory.listSnapshotBlocks(snapshotId, { maxResults: 1000 })).blocks.map((b) => b.token);
    await withVolume(async (v) => {
      const file = makeVolumeFile(v);
      memory.injectFailure(GET, new EbsError('InternalServerException', 'down', { status: 500 }), SHORT_RETRY.maxAttempts);
      const buf = Buffer.alloc(4096);
      await assert.rejects(file.read(buf, 4096, 2 * BLOCK_SIZE), (e: unknown) => {
        assert.ok(e instanceof IoError);
        assert.equal(e.code, 'EIO');
        assert.match(e.message, new RegExp(`block 2 of ${snapshotId}`));
        return true;
      });
      assert.equal(v.stats.get('ebs.errors'), 1);
      // Other blocks, and the same block later, still read.
      await readAllAndCompare(v, 3, 5);
      await readAllAndCompare(v, 2, 2);
      const log = lines.join('');
      assert.match(log, new RegExp(snapshotId));
      assert.match(log, /"block":2/);
      for (const t of tokens) assert.ok(!log.includes(t), 'no token in the log');
    }, { retryPolicy: SHORT_RETRY, logger });
  });

  test('a body that never verifies is never returned', async () => {
    await withVolume(async (v) => {
      memory.corruptNext(GET, SHORT_RETRY.maxAttempts);
      await assert.rejects(v.reader.readBlock(9), (e: unknown) => e instanceof IoError && e.code === 'EIO');
      assert.equal(v.stats.get('ebs.checksum.mismatch'), SHORT_RETRY.maxAttempts);
      assert.equal(v.cache.has(9), false, 'nothing cached');
      const good = await v.reader.readBlock(9);
      assert.ok(good?.equals(blocks.get(9)!));
    }, { retryPolicy: SHORT_RETRY });
  });

  test('an access error on reads is not retried', async () => {
    await withVolume(async (v) => {
      const before = memory.counts(GET);
      memory.injectFailure(GET, new EbsError('AccessDeniedException', 'denied', { status: 403 }), 1);
      await assert.rejects(v.reader.readBlock(1), (e: unknown) => e instanceof IoError && e.code === 'EIO');
      assert.equal(memory.counts(GET) - before, 1);
      assert.ok(memory.counts(LIST) >= 1);
    });
  });
});
