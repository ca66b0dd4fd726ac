import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_SIZE, GIB } from '../../../src/ebs/constants.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { IoError } from '../../../src/fs/io-error.js';
import { VolumeFile } from '../../../src/fs/volume-file.js';
import type { BlockWriter } from '../../../src/store/block-store.js';
import { makeVolumeFile, openSnapshotVolume, type OpenedVolume } from '../../../src/store/open-volume.js';
import { Stats } from '../../../src/util/stats.js';
import { FAST_RETRY, modelBytes, noSleep, prng, randomBlocks, randomInt } from '../store/fixtures.js';

const GET = 'getSnapshotBlock';

// A 1 GiB volume: a run at the start, scattered blocks, a run in the middle, the last blocks.
const ALLOCATED = [
  ...Array.from({ length: 12 }, (_, i) => i),
  100, 101, 500, 777,
  ...Array.from({ length: 10 }, (_, i) => 1000 + i),
  2040, 2041, 2042, 2047,
];

describe('VolumeFile over a snapshot', () => {
  const api = new MemoryEbsApi();
  const blocks = randomBlocks(ALLOCATED);
  const size = GIB;
  let opened: OpenedVolume;

  before(async () => {
    const snapshotId = api.createCompletedSnapshot(blocks, 1);
    opened = await openSnapshotVolume(api, snapshotId, {
      cacheSizeBytes: 16 * BLOCK_SIZE,
      retryPolicy: FAST_RETRY,
      sleep: noSleep,
    });
  });
  after(() => opened?.close());

  test('size and flags', () => {
    const file = makeVolumeFile(opened);
    assert.equal(file.sizeBytes, GIB);
    assert.equal(opened.volumeSizeGiB, 1);
    assert.equal(file.writable, false);
  });

  test('random reads equal the byte model', async () => {
    const file = makeVolumeFile(opened);
    const rand = prng(7);
    const hot = [0, 5, 11, 100, 500, 777, 1000, 1005, 2040, 2047];
    for (let i = 0; i < 400; i++) {
      // Mostly near allocated blocks and block boundaries, sometimes anywhere.
      const block = rand() < 0.8 ? hot[randomInt(rand, hot.length)]! : randomInt(rand, 2048);
      const jitter = rand() < 0.3 ? BLOCK_SIZE - randomInt(rand, 4096) : randomInt(rand, BLOCK_SIZE);
      const position = Math.min(size + 10, block * BLOCK_SIZE + jitter);
      const length = 1 + randomInt(rand, rand() < 0.7 ? 131_072 : 3 * BLOCK_SIZE);
      const buf = Buffer.alloc(length, 0xee);
      const n = await file.read(buf, length, position);
      const expected = modelBytes(blocks, size, position, length);
      assert.equal(n, expected.length, `length at ${position}+${length}`);
      assert.ok(buf.subarray(0, n).equals(expected), `bytes at ${position}+${length}`);
    }
  });

  test('concurrent reads through a cache smaller than their working set equal the model', async () => {
    const file = makeVolumeFile(opened);
    const rand = prng(99);
    const reads = Array.from({ length: 64 }, () => {
      const position = ALLOCATED[randomInt(rand, ALLOCATED.length)]! * BLOCK_SIZE + randomInt(rand, BLOCK_SIZE);
      const length = 1 + randomInt(rand, 2 * BLOCK_SIZE);
      return { position, length };
    });
    const bufs = await Promise.all(
      reads.map(async ({ position, length }) => {
        const buf = Buffer.alloc(length);
        const n = await file.read(buf, length, position);
        return buf.subarray(0, n);
      }),
    );
    for (const [k, { position, length }] of reads.entries()) {
      assert.ok(bufs[k]!.equals(modelBytes(blocks, size, position, length)), `read ${k}`);
    }
    assert.ok(opened.cache.cachedBytes <= 16 * BLOCK_SIZE);
  });

  test('reads at and past the end are 0 or short', async () => {
    const file = makeVolumeFile(opened);
    const buf = Buffer.alloc(8192);
    assert.equal(await file.read(buf, 8192, size), 0);
    assert.equal(await file.read(buf, 8192, size + BLOCK_SIZE), 0);
    assert.equal(await file.read(buf, 8192, size - 100), 100);
    assert.ok(buf.subarray(0, 100).equals(blocks.get(2047)!.subarray(BLOCK_SIZE - 100)));
    await assert.rejects(file.read(buf, 10, -1), (e: unknown) => e instanceof IoError && e.code === 'EINVAL');
  });

  test('a read larger than the cache spanning data and holes is exact', async () => {
    const file = makeVolumeFile(opened);
    const position = 990 * BLOCK_SIZE + 12345;
    const length = 40 * BLOCK_SIZE; // the cache holds 16
    const buf = Buffer.alloc(length, 0xee);
    assert.equal(await file.read(buf, length, position), length);
    assert.ok(buf.equals(modelBytes(blocks, size, position, length)));
  });

  test('holes read as zeros without GetSnapshotBlock', async () => {
    const file = makeVolumeFile(opened);
    const before = api.counts(GET);
    const buf = Buffer.alloc(3 * BLOCK_SIZE, 0xee);
    for (const block of [200, 1500, 2043]) {
      assert.equal(await file.read(buf, buf.length, block * BLOCK_SIZE), buf.length);
      assert.ok(buf.every((b) => b === 0));
    }
    assert.equal(api.counts(GET), before);
  });

  test('bytes.read counts what reads returned', async () => {
    const stats = opened.stats;
    const file = makeVolumeFile(opened);
    const start = stats.get('bytes.read');
    await file.read(Buffer.alloc(4096), 4096, 0);
    await file.read(Buffer.alloc(4096), 4096, size - 10);
    assert.equal(stats.get('bytes.read') - start, 4106);
  });

  test('writes without a writer fail with EROFS', async () => {
    const file = makeVolumeFile(opened);
    await assert.rejects(file.write(Buffer.alloc(10), 10, 0), (e: unknown) => e instanceof IoError && e.code === 'EROFS');
  });
});

describe('VolumeFile writes', () => {
  class RecordingWriter implements BlockWriter {
    ranges: { index: number; offsetInBlock: number; data: Buffer }[] = [];
    flushes = 0;
    async writeBlockRange(index: number, offsetInBlock: number, data: Buffer): Promise<void> {
      this.ranges.push({ index, offsetInBlock, data: Buffer.from(data) });
    }
    async flush(): Promise<void> {
      this.flushes++;
    }
  }
  const zeroReader = { readBlock: async () => null };
  const make = (writer: RecordingWriter) =>
    new VolumeFile({ sizeBytes: 4 * BLOCK_SIZE, reader: zeroReader, writer, stats: new Stats(), allocatedBlocks: () => 3 });

  test('a write is split into per-block ranges', async () => {
    const writer = new RecordingWriter();
    const file = make(writer);
    assert.equal(file.writable, true);
    const data = Buffer.alloc(BLOCK_SIZE + 20);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    assert.equal(await file.write(data, data.length, BLOCK_SIZE - 10), data.length);
    writer.ranges.sort((a, b) => a.index - b.index);
    assert.deepEqual(writer.ranges.map((r) => [r.index, r.offsetInBlock, r.data.length]), [
      [0, BLOCK_SIZE - 10, 10],
      [1, 0, BLOCK_SIZE],
      [2, 0, 10],
    ]);
    assert.ok(Buffer.concat(writer.ranges.map((r) => r.data)).equals(data));
    await file.flush();
    assert.equal(writer.flushes, 1);
    assert.equal(file.allocatedBlocks(), 3);
  });

  test('writes past the end: ENOSPC, or short when straddling the end', async () => {
    const writer = new RecordingWriter();
    const file = make(writer);
    const end = 4 * BLOCK_SIZE;
    await assert.rejects(file.write(Buffer.alloc(10), 10, end), (e: unknown) => e instanceof IoError && e.code === 'ENOSPC');
    assert.equal(await file.write(Buffer.alloc(100), 100, end - 40), 40);
    assert.deepEqual(writer.ranges.map((r) => [r.index, r.offsetInBlock, r.data.length]), [[3, BLOCK_SIZE - 40, 40]]);
  });

  test('a failing block write rejects the write', async () => {
    const file = new VolumeFile({
      sizeBytes: 4 * BLOCK_SIZE,
      reader: zeroReader,
      writer: {
        writeBlockRange: async (index) => {
          if (index === 1) throw new IoError('EIO', 'journal failed');
        },
        flush: async () => {},
      },
      stats: new Stats(),
      allocatedBlocks: () => 0,
    });
    await assert.rejects(file.write(Buffer.alloc(BLOCK_SIZE), BLOCK_SIZE, 100), (e: unknown) => e instanceof IoError && e.code === 'EIO');
  });
});
