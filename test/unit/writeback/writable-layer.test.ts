import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Base64 } from '../../../src/ebs/checksum.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { IoError } from '../../../src/fs/io-error.js';
import { makeVolumeFile, openSnapshotVolume, type OpenedVolume } from '../../../src/store/open-volume.js';
import { UserError } from '../../../src/errors/user-error.js';
import { openWritableLayer, type WritableLayer } from '../../../src/writeback/writable-layer.js';
import { defaultJournalRoot } from '../../../src/writeback/paths.js';
import { listJournals } from '../../../src/writeback/journal-registry.js';
import { FAST_RETRY, noSleep } from '../store/fixtures.js';
import { ByteModel, patternBlock, prng, tempDir } from './fixtures.js';

const fast = { retryPolicy: FAST_RETRY, openRetryPolicy: FAST_RETRY, sleep: noSleep, backgroundCount: false };

async function openParent(api: MemoryEbsApi, blocks: Map<number, Buffer>): Promise<{ id: string; opened: OpenedVolume }> {
  const id = api.createCompletedSnapshot(blocks, 1);
  return { id, opened: await openSnapshotVolume(api, id, fast) };
}

describe('openWritableLayer', () => {
  test('writes through a VolumeFile, commit makes a child equal to the byte model; the parent is unchanged', async () => {
    const api = new MemoryEbsApi();
    const parentBlocks = new Map([[0, patternBlock(1)], [1, patternBlock(2)], [9, patternBlock(9)]]);
    const { id, opened } = await openParent(api, parentBlocks);
    const t = await tempDir();
    let layer: WritableLayer | undefined;
    try {
      layer = await openWritableLayer(opened, {
        api, journalRoot: t.dir, description: 'unit', tags: [{ key: 'a', value: 'b' }], retryPolicy: FAST_RETRY, sleep: noSleep,
      });
      assert.ok(layer.journalDir.startsWith(t.dir));
      const file = makeVolumeFile(opened, layer.writer, layer.reader);
      assert.equal(file.writable, true);
      const model = new ByteModel(parentBlocks);
      const rand = prng(7);
      for (let k = 0; k < 60; k++) {
        const length = 1 + Math.floor(rand() * 300_000);
        const position = Math.floor(rand() * (12 * BLOCK_SIZE - length));
        const data = Buffer.alloc(length, 1 + (k % 250));
        assert.equal(await file.write(data, length, position), length);
        model.write(position, data);
      }
      await file.write(Buffer.alloc(BLOCK_SIZE), BLOCK_SIZE, 9 * BLOCK_SIZE); // zero a parent block
      model.write(9 * BLOCK_SIZE, Buffer.alloc(BLOCK_SIZE));
      await file.flush();
      const probe = Buffer.alloc(3 * BLOCK_SIZE);
      await file.read(probe, probe.length, 5 * BLOCK_SIZE + 3);
      assert.ok(probe.equals(Buffer.concat([model.block(5), model.block(6), model.block(7), model.block(8)]).subarray(3, 3 + probe.length)));
      assert.ok(layer.dirtyBlockCount() > 0);

      const progress: number[] = [];
      const { snapshotId } = await layer.commit((done) => progress.push(done));
      assert.ok(snapshotId);
      assert.equal(api.statusOf(snapshotId!), 'completed');
      assert.equal(api.infoOf(snapshotId!).parentSnapshotId, id);
      assert.equal(api.infoOf(snapshotId!).description, 'unit');
      const child = api.blocksOf(snapshotId!);
      for (let i = 0; i < 14; i++) {
        const got = child.get(i) ?? Buffer.alloc(BLOCK_SIZE);
        assert.equal(sha256Base64(got), sha256Base64(model.block(i)), `child block ${i}`);
      }
      const parentNow = api.blocksOf(id);
      for (const [i, b] of parentBlocks) assert.ok(parentNow.get(i)!.equals(b), `parent block ${i} unchanged`);
      assert.ok(progress.length > 0);

      // After the commit: writes are refused, commit answers the same id.
      await assert.rejects(file.write(Buffer.alloc(1), 1, 0), (e: unknown) => e instanceof IoError && e.code === 'EROFS');
      assert.deepEqual(await layer.commit(), { snapshotId });
      await layer.close();
    } finally {
      opened.close();
      await t.cleanup();
    }
  });

  test('a journal dir is reopened with its writes; a wrong parent or a committed journal is refused', async () => {
    const api = new MemoryEbsApi();
    const { opened } = await openParent(api, new Map([[0, patternBlock(1)]]));
    const other = await openParent(api, new Map([[0, patternBlock(2)]]));
    const t = await tempDir();
    const journalDir = join(t.dir, 'mine');
    const journalRoot = join(t.dir, 'root');
    try {
      const first = await openWritableLayer(opened, { api, journalDir, journalRoot });
      assert.equal(first.resumed, false);
      await first.writer.writeBlockRange(3, 100, Buffer.from('persisted'));
      await first.close();
      const listed = await listJournals(journalRoot);
      assert.equal(listed.length, 1, 'a journal outside the root is registered there');
      assert.equal(listed[0]!.dir, journalDir);
      assert.equal(listed[0]!.dirtyBlocks, 1);
      assert.equal(listed[0]!.state, 'open');

      await assert.rejects(openWritableLayer(other.opened, { api, journalDir }), (e: unknown) => e instanceof UserError && /belongs to snapshot/.test(e.message));

      const second = await openWritableLayer(opened, { api, journalDir, retryPolicy: FAST_RETRY, sleep: noSleep });
      assert.equal(second.resumed, true);
      assert.equal(second.dirtyBlockCount(), 1);
      const block = (await second.reader.readBlock(3))!;
      assert.equal(block.subarray(100, 109).toString(), 'persisted');
      const { snapshotId } = await second.commit();
      assert.ok(snapshotId);
      await second.close();
      assert.equal((await listJournals(journalRoot)).length, 0);
      assert.equal((await listJournals(journalRoot, { all: true }))[0]!.childSnapshotId, snapshotId);
      await assert.rejects(openWritableLayer(opened, { api, journalDir }), (e: unknown) => e instanceof UserError && /already committed/.test(e.message));
    } finally {
      opened.close();
      other.opened.close();
      await t.cleanup();
    }
  });

  test('no writes: commit makes no snapshot; discard deletes the journal', async () => {
    const api = new MemoryEbsApi();
    const { opened } = await openParent(api, new Map([[0, patternBlock(1)]]));
    const t = await tempDir();
    try {
      const idle = await openWritableLayer(opened, { api, journalRoot: t.dir });
      assert.deepEqual(await idle.commit(), { snapshotId: null });
      assert.equal(api.counts('startSnapshot'), 0);
      await idle.close();
      assert.deepEqual(await readdir(t.dir), [], 'no child: the journal is not kept');
      const unused = await openWritableLayer(opened, { api, journalRoot: t.dir });
      await unused.writer.flush();
      await unused.close();
      assert.deepEqual(await readdir(t.dir), [], 'closed without writes: the journal is not kept');

      const scratch = await openWritableLayer(opened, { api, journalRoot: t.dir });
      await scratch.writer.writeBlockRange(1, 0, Buffer.alloc(5000, 3));
      await scratch.writer.flush();
      assert.equal((await listJournals(t.dir)).length, 1, 'the scratch journal is listed as unfinished');
      await scratch.discard();
      await assert.rejects(stat(scratch.journalDir));
      await assert.rejects(scratch.writer.writeBlockRange(1, 0, Buffer.alloc(1)), (e: unknown) => e instanceof IoError && e.code === 'EROFS');
      assert.equal(api.counts('startSnapshot'), 0);
      assert.deepEqual(await readdir(t.dir), []);
      assert.equal((await listJournals(t.dir, { all: true })).length, 0);
    } finally {
      opened.close();
      await t.cleanup();
    }
  });

  test('a block rewritten with the parent\'s cached content is not uploaded', async () => {
    const api = new MemoryEbsApi();
    const parentBlocks = new Map([[0, patternBlock(1)], [1, patternBlock(2)]]);
    const { opened } = await openParent(api, parentBlocks);
    const t = await tempDir();
    try {
      const layer = await openWritableLayer(opened, { api, journalRoot: t.dir, retryPolicy: FAST_RETRY, sleep: noSleep });
      const file = makeVolumeFile(opened, layer.writer, layer.reader);
      const buf = Buffer.alloc(BLOCK_SIZE);
      await file.read(buf, BLOCK_SIZE, 0); // block 0 now cached
      await file.write(buf, BLOCK_SIZE, 0); // same bytes
      await file.write(Buffer.alloc(10, 9), 10, BLOCK_SIZE + 1); // block 1 really changes
      await file.write(Buffer.alloc(BLOCK_SIZE), BLOCK_SIZE, 5 * BLOCK_SIZE); // zeros where the parent has none
      const { snapshotId } = await layer.commit();
      const puts = api.calls.filter((c) => c.op === 'putSnapshotBlock').map((c) => c.index);
      assert.deepEqual(puts, [1]);
      assert.ok(api.blocksOf(snapshotId!).get(0)!.equals(parentBlocks.get(0)!));
      await layer.close();
    } finally {
      opened.close();
      await t.cleanup();
    }
  });

  test('blocks still assembling from pieces are counted, kept by close() and included by commit()', async () => {
    const api = new MemoryEbsApi();
    const parentBlocks = new Map([[0, patternBlock(1)], [1, patternBlock(2)]]);
    const { opened } = await openParent(api, parentBlocks);
    const t = await tempDir();
    const journalDir = join(t.dir, 'jd');
    let layer: WritableLayer | undefined;
    try {
      layer = await openWritableLayer(opened, { api, journalDir, journalRoot: t.dir, retryPolicy: FAST_RETRY, sleep: noSleep });
      const file = makeVolumeFile(opened, layer.writer, layer.reader);
      const head = Buffer.alloc(4096, 0x77);
      await file.write(head, head.length, 0); // block 0 starts assembling (nothing in the journal yet)
      assert.equal(layer.dirtyBlockCount(), 1);
      await layer.close(); // no flush by the caller: close still writes it to the journal
      layer = await openWritableLayer(opened, { api, journalDir, journalRoot: t.dir, retryPolicy: FAST_RETRY, sleep: noSleep });
      assert.equal(layer.dirtyBlockCount(), 1);
      const file2 = makeVolumeFile(opened, layer.writer, layer.reader);
      await file2.write(head, head.length, BLOCK_SIZE); // block 1 assembling at commit time
      const { snapshotId } = await layer.commit();
      const child = api.blocksOf(snapshotId!);
      for (const i of [0, 1]) {
        const want = Buffer.from(parentBlocks.get(i)!);
        head.copy(want, 0);
        assert.ok(child.get(i)!.equals(want), `child block ${i}`);
      }
      await layer.close();
    } finally {
      opened.close();
      await t.cleanup();
    }
  });

  test('defaultJournalRoot follows XDG_STATE_HOME, else ~/.local/state', () => {
    assert.equal(defaultJournalRoot({ XDG_STATE_HOME: '/x/state', HOME: '/home/u' }), '/x/state/ebsmount/journals');
    assert.equal(defaultJournalRoot({ HOME: '/home/u' }), '/home/u/.local/state/ebsmount/journals');
    assert.equal(defaultJournalRoot({ XDG_STATE_HOME: 'relative', HOME: '/home/u' }), '/home/u/.local/state/ebsmount/journals');
  });
});
