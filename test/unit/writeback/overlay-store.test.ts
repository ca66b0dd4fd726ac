import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { sha256Base64 } from '../../../src/ebs/checksum.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { IoError } from '../../../src/fs/io-error.js';
import { VolumeFile } from '../../../src/fs/volume-file.js';
import { Journal } from '../../../src/writeback/journal.js';
import { KeyedMutex, OverlayStore, addRange } from '../../../src/writeback/overlay-store.js';
import { Stats } from '../../../src/util/stats.js';
import { ByteModel, CountingReader, PARENT_ID, patternBlock, prng, tempDir } from './fixtures.js';

const VOLUME = 1024 ** 3;

interface Rig {
  dir: string;
  journal: Journal;
  overlay: OverlayStore;
  lower: CountingReader;
  file: VolumeFile;
  reopen(): Promise<void>;
  done(): Promise<void>;
}

async function rig(parent: Map<number, Buffer>, cacheBlocks?: number, assembleBlocks?: number): Promise<Rig> {
  const t = await tempDir();
  const dir = join(t.dir, 'j');
  const lower = new CountingReader(parent);
  const r = {} as Rig;
  const wire = (journal: Journal) => {
    r.journal = journal;
    r.overlay = new OverlayStore({ journal, lower, cacheBlocks, assembleBlocks });
    r.file = new VolumeFile({ sizeBytes: VOLUME, reader: r.overlay, writer: r.overlay, stats: new Stats(), allocatedBlocks: () => 0 });
  };
  wire(await Journal.create(dir, { journalId: 'j', parentSnapshotId: PARENT_ID, volumeSizeGiB: 1 }));
  Object.assign(r, {
    dir,
    lower,
    async reopen() {
      await r.journal.abandon(); // a crash: nothing more is flushed
      wire(await Journal.open(dir));
    },
    async done() {
      await r.journal.abandon();
      await t.cleanup();
    },
  });
  return r;
}

async function readRange(file: VolumeFile, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const n = await file.read(buf, length, position);
  assert.equal(n, length);
  return buf;
}

describe('OverlayStore', () => {
  test('read-your-writes; clean blocks come from the parent', async () => {
    const parent = new Map([[0, patternBlock(1)], [2, patternBlock(2)]]);
    const r = await rig(parent);
    try {
      const data = Buffer.from('hello, writable world');
      await r.file.write(data, data.length, BLOCK_SIZE * 2 + 100);
      const got = await readRange(r.file, BLOCK_SIZE * 2 + 90, 40);
      const want = Buffer.from(parent.get(2)!.subarray(90, 130));
      data.copy(want, 10);
      assert.ok(got.equals(want));
      assert.ok((await r.overlay.readBlock(0))!.equals(parent.get(0)!), 'clean block from the parent');
      assert.equal(await r.overlay.readBlock(5), null, 'a hole of the parent reads as zeros');
      assert.ok(r.journal.has(2));
      assert.ok(!r.journal.has(0));
    } finally {
      await r.done();
    }
  });

  test('the parent block is fetched at most once per block; whole-block writes fetch nothing', async () => {
    const parent = new Map([[1, patternBlock(1)], [3, patternBlock(3)]]);
    const r = await rig(parent, 1); // a tiny dirty cache: later merges read the journal
    r.lower.delayMs = 5;
    try {
      // Concurrent partial writes to one block: serialized, one parent read.
      const writes = [];
      for (let k = 0; k < 20; k++) {
        const piece = Buffer.alloc(4096, k + 1);
        writes.push(r.file.write(piece, piece.length, BLOCK_SIZE + k * 8192 + 17));
      }
      await Promise.all(writes);
      for (let k = 0; k < 20; k++) {
        const piece = Buffer.alloc(1000, k);
        await r.file.write(piece, piece.length, BLOCK_SIZE * 3 + k * 20_000 + 1);
        await r.file.write(piece, piece.length, BLOCK_SIZE * 1 + k * 20_000 + 5); // evicts block 3 from the 1-block cache
      }
      assert.equal(r.lower.reads.get(1), 1);
      assert.equal(r.lower.reads.get(3), 1);
      await r.file.write(patternBlock(9), BLOCK_SIZE, BLOCK_SIZE * 7);
      assert.equal(r.lower.reads.get(7), undefined, 'a whole-block write reads nothing');
      await r.file.flush();
      await r.reopen();
      const piece = Buffer.alloc(10, 0xee);
      await r.file.write(piece, piece.length, BLOCK_SIZE + 3);
      assert.equal(r.lower.reads.get(1), 1, 'not even after a restart');
    } finally {
      await r.done();
    }
  });

  test('partial writes at random offsets and lengths match a byte model, across flushes and a crash', async () => {
    const parent = new Map([[0, patternBlock(50)], [1, patternBlock(51)], [4, patternBlock(54)], [6, patternBlock(56)]]);
    const r = await rig(parent, 3);
    const model = new ByteModel(parent);
    let durable = new ByteModel(parent);
    const rand = prng(20240601);
    const span = 8 * BLOCK_SIZE;
    try {
      for (let step = 0; step < 300; step++) {
        const length = 1 + Math.floor(rand() * (rand() < 0.2 ? 3 * BLOCK_SIZE : 70_000));
        const position = Math.floor(rand() * (span - length));
        const data = Buffer.alloc(length);
        if (rand() < 0.8) for (let i = 0; i < length; i += 97) data[i] = 1 + Math.floor(rand() * 255);
        await r.file.write(data, length, position);
        model.write(position, data);
        if (step % 37 === 36) {
          await r.file.flush();
          durable = new ByteModel(model.blocks);
        }
        if (step % 50 === 0) {
          const p = Math.floor(rand() * (span - 100_000));
          const got = await readRange(r.file, p, 100_000);
          const want = Buffer.concat([...Array(9).keys()].map((i) => model.block(i))).subarray(p, p + 100_000);
          assert.ok(got.equals(want), `read at ${p} after step ${step}`);
        }
      }
      for (let i = 0; i < 9; i++) {
        const got = (await r.overlay.readBlock(i)) ?? Buffer.alloc(BLOCK_SIZE);
        assert.ok(got.equals(model.block(i)), `block ${i} equals the model`);
      }
      // A crash now keeps exactly what the last flush covered.
      await r.reopen();
      for (let i = 0; i < 9; i++) {
        const got = (await r.overlay.readBlock(i)) ?? Buffer.alloc(BLOCK_SIZE);
        assert.ok(got.equals(durable.block(i)), `block ${i} after the crash equals the last flushed state`);
      }
    } finally {
      await r.done();
    }
  });

  test('zeroing a block the parent has reads as zeros and is kept as a zero record', async () => {
    const parent = new Map([[3, patternBlock(3)]]);
    const r = await rig(parent);
    try {
      await r.file.write(Buffer.alloc(BLOCK_SIZE), BLOCK_SIZE, 3 * BLOCK_SIZE);
      assert.equal(await r.overlay.readBlock(3), null);
      assert.ok(r.journal.isZero(3));
      // zeroing in pieces works too
      const parent2 = await r.overlay.readBlock(0);
      assert.equal(parent2, null);
      await r.file.flush();
      await r.reopen();
      assert.equal(await r.overlay.readBlock(3), null);
      assert.deepEqual(r.journal.dirtyIndexes(), [3]);
    } finally {
      await r.done();
    }
  });

  test('a parent block that cannot be read fails the write with EIO and leaves the block clean', async () => {
    const r = await rig(new Map([[2, patternBlock(2)]]));
    r.lower.failing.add(2);
    try {
      await assert.rejects(r.file.write(Buffer.alloc(10, 1), 10, 2 * BLOCK_SIZE + 5), (e: unknown) => e instanceof IoError && e.code === 'EIO');
      assert.ok(!r.journal.has(2));
      r.lower.failing.clear();
      await r.file.write(Buffer.alloc(10, 1), 10, 2 * BLOCK_SIZE + 5);
      const got = await readRange(r.file, 2 * BLOCK_SIZE, 20);
      const want = Buffer.from(patternBlock(2).subarray(0, 20));
      want.fill(1, 5, 15);
      assert.ok(got.equals(want));
    } finally {
      await r.done();
    }
  });

  test('a read of a block being written waits for the write', async () => {
    const r = await rig(new Map([[0, patternBlock(1)]]));
    r.lower.delayMs = 20;
    try {
      const w = r.file.write(Buffer.alloc(8, 0xab), 8, 0);
      const read = r.overlay.readBlock(0);
      await w;
      const got = (await read)!;
      assert.equal(got[0], 0xab, 'the read saw the write that started first');
    } finally {
      await r.done();
    }
  });

  test('memory: the dirty cache holds at most cacheBlocks blocks', async () => {
    const r = await rig(new Map(), 4);
    try {
      for (let i = 0; i < 40; i++) await r.file.write(Buffer.alloc(100, 1), 100, i * BLOCK_SIZE + 7);
      assert.ok(r.overlay.cachedBlocks <= 4);
      assert.equal(r.journal.dirtyBlockCount, 40);
    } finally {
      await r.done();
    }
  });

  test('the parent checksum seen by the first read-modify-write is remembered', async () => {
    const parent = new Map([[1, patternBlock(1)]]);
    const r = await rig(parent);
    try {
      await r.file.write(Buffer.alloc(10, 1), 10, BLOCK_SIZE + 5);
      await r.file.write(Buffer.alloc(10, 1), 10, 2 * BLOCK_SIZE + 5);
      await r.file.write(patternBlock(3), BLOCK_SIZE, 3 * BLOCK_SIZE);
      assert.equal(r.overlay.parentChecksum(1), sha256Base64(parent.get(1)!));
      assert.equal(r.overlay.parentChecksum(2), 'absent');
      assert.equal(r.overlay.parentChecksum(3), undefined, 'a whole-block write never saw the parent');
    } finally {
      await r.done();
    }
  });

  test('a block written as sequential pieces from offset 0 never reads the parent; its checksum is recorded without a read-back', async () => {
    const parent = new Map([[0, patternBlock(1)], [1, patternBlock(2)], [2, patternBlock(3)]]);
    const r = await rig(parent);
    const model = new ByteModel(parent);
    try {
      const data = Buffer.concat([patternBlock(10), patternBlock(11), patternBlock(12)]);
      for (let off = 0; off < data.length; off += 131_072) {
        await r.file.write(data.subarray(off, off + 131_072), 131_072, off); // like the kernel's 128 KiB FUSE writes
      }
      model.write(0, data);
      assert.equal(r.lower.totalReads, 0, 'no parent read for fully overwritten blocks');
      assert.equal(r.overlay.assemblingBlocks, 0);
      assert.deepEqual(r.journal.dirtyIndexes(), [0, 1, 2]);
      await r.file.flush();
      for (let i = 0; i < 3; i++) assert.equal(r.journal.durableChecksum(i), sha256Base64(model.block(i)), `checksum of block ${i}`);
      await r.reopen();
      for (let i = 0; i < 3; i++) assert.ok((await r.overlay.readBlock(i))!.equals(model.block(i)), `block ${i} after a crash`);
      assert.equal(r.lower.totalReads, 0);
    } finally {
      await r.done();
    }
  });

  test('an assembling block is completed from the parent when read, flushed, or evicted; unflushed it is lost in a crash', async () => {
    const parent = new Map([[0, patternBlock(1)], [1, patternBlock(2)], [2, patternBlock(3)], [3, patternBlock(4)], [4, patternBlock(5)]]);
    const r = await rig(parent, 16, 2);
    const model = new ByteModel(parent);
    try {
      const w = async (pos: number, len: number, fill: number) => {
        const d = Buffer.alloc(len, fill);
        await r.file.write(d, len, pos);
        model.write(pos, d);
      };
      // Block 0: head and a later piece (a gap): read → completed with the parent's bytes.
      await w(0, 1000, 0xa1);
      await w(300_000, 5000, 0xa2);
      assert.equal(r.lower.totalReads, 0);
      assert.equal(r.overlay.assemblingBlocks, 1);
      assert.ok((await readRange(r.file, 0, BLOCK_SIZE)).equals(model.block(0)));
      assert.equal(r.lower.reads.get(0), 1);
      assert.equal(r.overlay.assemblingBlocks, 0);
      // Blocks 1..4 start assembling; at most 2 at a time (the oldest is completed).
      for (let i = 1; i <= 4; i++) {
        await w(i * BLOCK_SIZE, 4096, i);
        assert.ok(r.overlay.assemblingBlocks <= 2);
      }
      assert.equal(r.lower.reads.get(1), 1, 'block 1 evicted: completed from the parent');
      // A crash now loses exactly the unflushed writes, but a flush first keeps everything.
      await r.file.flush();
      assert.equal(r.overlay.assemblingBlocks, 0);
      const durable = new ByteModel(model.blocks);
      await w(2 * BLOCK_SIZE, 4096, 0xee); // block 2 is dirty now: plain read-modify-write
      await w(5 * BLOCK_SIZE, 4096, 0xef); // block 5 (a hole of the parent) starts assembling, never flushed
      assert.equal(r.overlay.assemblingBlocks, 1);
      for (let i = 0; i < 6; i++) assert.ok(((await r.overlay.readBlock(i)) ?? Buffer.alloc(BLOCK_SIZE)).equals(model.block(i)), `block ${i}`);
      await r.reopen();
      for (let i = 0; i < 6; i++) {
        assert.ok(((await r.overlay.readBlock(i)) ?? Buffer.alloc(BLOCK_SIZE)).equals(durable.block(i)), `block ${i} after the crash`);
      }
      for (const [i, b] of parent) if (!model.blocks.get(i)!.equals(b)) assert.ok(r.journal.has(i));
    } finally {
      await r.done();
    }
  });

  test('a parent read failing while completing an assembling block fails the flush with EIO and keeps the writes', async () => {
    const parent = new Map([[3, patternBlock(3)]]);
    const r = await rig(parent);
    try {
      const piece = Buffer.alloc(65_536, 0x5a);
      await r.file.write(piece, piece.length, 3 * BLOCK_SIZE); // offset 0: assembling, no read yet
      r.lower.failing.add(3);
      await assert.rejects(r.file.flush(), (e: unknown) => e instanceof IoError && e.code === 'EIO');
      assert.equal(r.overlay.assemblingBlocks, 1, 'still assembling');
      r.lower.failing.clear();
      await r.file.flush();
      const want = Buffer.from(parent.get(3)!);
      piece.copy(want, 0);
      await r.reopen();
      assert.ok((await r.overlay.readBlock(3))!.equals(want));
    } finally {
      await r.done();
    }
  });

  test('pieces out of order or overlapping still assemble correctly (the checksum is then computed at flush)', async () => {
    const r = await rig(new Map([[0, patternBlock(7)]]));
    try {
      const blk = patternBlock(20);
      const order = [0, 3, 1, 2];
      for (const k of order) await r.file.write(blk.subarray(k * 131_072, (k + 1) * 131_072), 131_072, k * 131_072);
      await r.file.write(blk.subarray(1000, 9000), 8000, 1000); // overlap, same bytes
      assert.equal(r.lower.totalReads, 0);
      await r.file.flush();
      assert.equal(r.journal.durableChecksum(0), sha256Base64(blk));
    } finally {
      await r.done();
    }
  });

  test('addRange merges ranges', () => {
    let rs: [number, number][] = [];
    rs = addRange(rs, 10, 20);
    rs = addRange(rs, 30, 40);
    assert.deepEqual(rs, [[10, 20], [30, 40]]);
    rs = addRange(rs, 20, 30);
    assert.deepEqual(rs, [[10, 40]]);
    rs = addRange(rs, 0, 5);
    rs = addRange(rs, 50, 60);
    rs = addRange(rs, 3, 55);
    assert.deepEqual(rs, [[0, 60]]);
  });

  test('KeyedMutex serializes per key in order', async () => {
    const m = new KeyedMutex();
    const order: number[] = [];
    const run = async (k: number, id: number, ms: number) => {
      const release = await m.lock(k);
      order.push(id);
      await new Promise((r) => setTimeout(r, ms));
      order.push(-id);
      release();
    };
    await Promise.all([run(1, 1, 10), run(1, 2, 1), run(2, 3, 1)]);
    assert.ok(order.indexOf(-1) < order.indexOf(2), 'second holder of key 1 waited');
    assert.ok(order.indexOf(3) < order.indexOf(-1), 'key 2 did not wait for key 1');
    assert.equal(m.isLocked(1), false);
  });
});
