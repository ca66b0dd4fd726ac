import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, readFile, stat, open } from 'node:fs/promises';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { sha256Base64 } from '../../../src/ebs/checksum.js';
import { BLOCK_SIZE, ZERO_BLOCK_SHA256 } from '../../../src/ebs/constants.js';
import { Journal, JournalDamagedError, JournalError } from '../../../src/writeback/journal.js';
import { describeJournal } from '../../../src/writeback/journal-registry.js';
import { JournalBusyError, journalLockHolder } from '../../../src/writeback/journal-lock.js';
import { LOCK_FILE } from '../../../src/writeback/paths.js';
import { holdLock } from '../../helpers/lock-holder.js';
import { RECORD_SIZE, TYPE_BLOCK, TYPE_SYNC, encodeRecord, decodeRecord } from '../../../src/writeback/journal-format.js';
import { PARENT_ID, patternBlock, tempDir } from './fixtures.js';

const init = (journalId = 'j-1') => ({ journalId, parentSnapshotId: PARENT_ID, volumeSizeGiB: 1, description: 'test', tags: [{ key: 'k', value: 'v' }] });

async function withJournal(fn: (dir: string) => Promise<void>): Promise<void> {
  const t = await tempDir();
  try {
    await fn(join(t.dir, 'j'));
  } finally {
    for (const j of live.splice(0)) await j.abandon();
    await t.cleanup();
  }
}

const live: Journal[] = [];
/** Opens the journal again as a new process would after a crash (earlier instances are abandoned). */
async function reopen(dir: string, opts = {}): Promise<Journal> {
  for (const j of live.splice(0)) await j.abandon();
  const j = await Journal.open(dir, opts);
  live.push(j);
  return j;
}
async function create(dir: string, i = init(), opts = {}): Promise<Journal> {
  const j = await Journal.create(dir, i, opts);
  live.push(j);
  return j;
}

describe('Journal', () => {
  test('records survive a reopen without close; meta is written', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      const a = patternBlock(1);
      const b = patternBlock(2);
      await j.writeBlock(3, a);
      await j.writeBlock(700, b);
      await j.flush();
      const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'));
      assert.equal(meta.parentSnapshotId, PARENT_ID);
      assert.equal(meta.state, 'open');
      assert.equal(meta.version, 1);
      assert.deepEqual(meta.tags, [{ key: 'k', value: 'v' }]);

      const r = await reopen(dir);
      assert.deepEqual(r.dirtyIndexes(), [3, 700]);
      assert.ok((await r.readBlock(3))!.equals(a));
      assert.ok((await r.readBlock(700))!.equals(b));
      assert.equal(await r.readBlock(4), undefined);
      assert.equal(r.durableChecksum(3), sha256Base64(a));
      await r.close();
    });
  });

  test('durability ordering: flushed writes survive a crash, later unflushed ones do not, and never damage them', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      const v1 = patternBlock(10);
      await j.writeBlock(5, v1);
      await j.flush();
      // After the durable point: overwrite block 5 (must go to a new slot) and write block 6.
      await j.writeBlock(5, patternBlock(11));
      await j.writeBlock(6, patternBlock(12));
      assert.equal(j.slotCount, 3, 'the overwrite went to a new slot (copy-on-write)');
      // crash: no flush, no close
      const r = await reopen(dir);
      assert.deepEqual(r.dirtyIndexes(), [5]);
      assert.ok((await r.readBlock(5))!.equals(v1), 'block 5 reads its flushed content');
      assert.equal(r.slotCount, 1, 'unreferenced slots were dropped');
      assert.equal((await stat(join(dir, 'blocks.dat'))).size, BLOCK_SIZE);
      await r.close();
    });
  });

  test('writes before the next flush overwrite the fresh slot in place; superseded slots are reused only after a flush', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      await j.writeBlock(1, patternBlock(1));
      const changed = Buffer.from(patternBlock(2));
      await j.writeBlock(1, changed, { offset: 0, length: 4096 });
      await j.writeBlock(1, patternBlock(3));
      assert.equal(j.slotCount, 1, 'same fresh slot');
      await j.flush();
      await j.writeBlock(1, patternBlock(4)); // new slot 1; slot 0 still durable for block 1
      assert.equal(j.slotCount, 2);
      assert.equal(j.freeSlotCount, 0, 'slot 0 is not free before the superseding record is durable');
      await j.writeBlock(2, patternBlock(5));
      assert.equal(j.slotCount, 3, 'block 2 did not reuse slot 0');
      await j.flush();
      assert.equal(j.freeSlotCount, 1, 'slot 0 freed by the flush');
      await j.writeBlock(3, patternBlock(6));
      assert.equal(j.slotCount, 3, 'block 3 reused slot 0');
      await j.flush();
      const r = await reopen(dir);
      assert.ok((await r.readBlock(1))!.equals(patternBlock(4)));
      assert.ok((await r.readBlock(2))!.equals(patternBlock(5)));
      assert.ok((await r.readBlock(3))!.equals(patternBlock(6)));
      await r.close();
    });
  });

  test('zero sentinel: an all-zero block takes no slot and reads as null', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      await j.writeBlock(9, patternBlock(1));
      await j.writeBlock(9, Buffer.alloc(BLOCK_SIZE)); // fresh slot abandoned, freed at once
      await j.writeBlock(10, Buffer.alloc(BLOCK_SIZE));
      assert.equal(j.isZero(9), true);
      assert.equal(j.isZero(10), true);
      assert.equal(await j.readBlock(9), null);
      assert.equal(j.freeSlotCount, 1);
      await j.flush();
      assert.equal(j.durableChecksum(9), ZERO_BLOCK_SHA256);
      const r = await reopen(dir);
      assert.deepEqual(r.dirtyIndexes(), [9, 10]);
      assert.equal(await r.readBlock(10), null);
      assert.equal(r.durableChecksum(10), ZERO_BLOCK_SHA256);
      assert.equal(r.slotCount, 0);
      await r.close();
    });
  });

  test('torn tail: a partial record and a batch without its sync record are ignored, and appending stays aligned', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      await j.writeBlock(1, patternBlock(1));
      await j.flush();
      // A block record for block 2 without a sync record, then half a record.
      const rec = Buffer.alloc(RECORD_SIZE);
      encodeRecord(rec, 0, { type: TYPE_BLOCK, seq: 999, blockIndex: 2, slot: 0, sha256: sha256Base64(patternBlock(1)) });
      await appendFile(join(dir, 'index.log'), Buffer.concat([rec, rec.subarray(0, 30)]));

      const r = await reopen(dir);
      assert.deepEqual(r.dirtyIndexes(), [1], 'the unsynced record was not applied');
      assert.equal(r.replayStats.tornBytes, RECORD_SIZE + 30);
      assert.equal((await stat(join(dir, 'index.log'))).size % RECORD_SIZE, 0, 'torn tail truncated');
      await r.writeBlock(2, patternBlock(2));
      await r.flush();
      const r2 = await reopen(dir);
      assert.deepEqual(r2.dirtyIndexes(), [1, 2]);
      assert.ok((await r2.readBlock(2))!.equals(patternBlock(2)));
      assert.equal(r2.replayStats.badRecords, 0);
      await r2.close();
    });
  });

  /** Two synced batches: block 1 (v1); then block 1 (v2) and block 2. Returns index.log's path and bytes. */
  async function twoBatches(dir: string): Promise<{ path: string; log: Buffer }> {
    const j = await create(dir, init());
    await j.writeBlock(1, patternBlock(1));
    await j.flush(); // records 0 (block 1), 1 (sync)
    await j.writeBlock(1, patternBlock(2));
    await j.writeBlock(2, patternBlock(3));
    await j.flush(); // records 2, 3 (blocks 1 and 2), 4 (sync)
    await j.abandon();
    const path = join(dir, 'index.log');
    return { path, log: await readFile(path) };
  }

  async function patch(path: string, at: number, bytes: Buffer): Promise<void> {
    const fh = await open(path, 'r+');
    await fh.write(bytes, 0, bytes.length, at);
    await fh.close();
  }

  /** Every way of opening refuses with one message naming the damage, and nothing on disk changes. */
  async function assertRefused(dir: string, path: string, log: Buffer, pattern: RegExp): Promise<void> {
    const before = await readFile(path);
    for (const opts of [{}, { readOnly: true }]) {
      await assert.rejects(reopen(dir, opts), (e: unknown) => {
        assert.ok(e instanceof JournalDamagedError, String(e));
        assert.match(e.message, pattern);
        assert.match(e.message, /--salvage/);
        assert.equal(e.message.split('\n').length, 1);
        return true;
      });
    }
    assert.ok((await readFile(path)).equals(before), 'a refused open changed index.log');
    assert.equal(before.length, log.length);
    const listed = await describeJournal(dir);
    assert.equal(listed.state, 'damaged');
    assert.match(listed.error ?? '', pattern);
  }

  test('a record with a bad CRC inside a synced batch: refused, never skipped; salvage loses that block, keeps the rest', async () => {
    await withJournal(async (dir) => {
      const { path, log } = await twoBatches(dir);
      let target = -1;
      for (let off = 0; off < log.length; off += RECORD_SIZE) {
        const rec = decodeRecord(log, off);
        if (rec && rec.type === TYPE_BLOCK && rec.blockIndex === 1 && off > 0) target = off;
      }
      assert.ok(target > 0);
      await patch(path, target + 30, Buffer.from([log[target + 30]! ^ 0x55]));
      await assertRefused(dir, path, log, new RegExp(`record ${target / RECORD_SIZE} .*unreadable \\(probably block 1\\)`));

      const s = await reopen(dir, { salvage: true });
      assert.deepEqual(s.salvage!.lostBlocks, [1], 'block 1 must not fall back to its older content');
      assert.equal(s.salvage!.unreadableRecords, 1);
      assert.deepEqual(s.dirtyIndexes(), [2]);
      assert.ok((await s.readBlock(2))!.equals(patternBlock(3)));
      assert.deepEqual(s.meta.salvaged?.lostBlocks, [1]);
      await s.close();
      const again = await reopen(dir);
      assert.deepEqual(again.dirtyIndexes(), [2], 'the salvaged journal opens normally');
      await again.close();
    });
  });

  test('a batch whose sync record counts other than its records: refused', async () => {
    await withJournal(async (dir) => {
      const { path, log } = await twoBatches(dir);
      const sync = decodeRecord(log, 4 * RECORD_SIZE)!;
      assert.equal(sync.type, TYPE_SYNC);
      const forged = Buffer.alloc(RECORD_SIZE);
      encodeRecord(forged, 0, { ...sync, blockIndex: 3 });
      await patch(path, 4 * RECORD_SIZE, forged);
      await assertRefused(dir, path, log, /holds 2 block records but its sync record says 3/);
    });
  });

  test('a hole (zeros) before the last sync record is damage; an unsynced tail after it is discarded', async () => {
    await withJournal(async (dir) => {
      const { path, log } = await twoBatches(dir);
      await patch(path, 2 * RECORD_SIZE, Buffer.alloc(RECORD_SIZE));
      await assertRefused(dir, path, log, /record 2 \(byte 128\) is unreadable/);
      await patch(path, 2 * RECORD_SIZE, log.subarray(2 * RECORD_SIZE, 3 * RECORD_SIZE));
      // Unsynced: a readable block record and garbage after the last sync record.
      const rec = Buffer.alloc(RECORD_SIZE);
      encodeRecord(rec, 0, { type: TYPE_BLOCK, seq: 6, blockIndex: 9, slot: 0, sha256: sha256Base64(patternBlock(1)) });
      await appendFile(path, Buffer.concat([rec, Buffer.alloc(100, 0xee)]));
      const r = await reopen(dir);
      assert.deepEqual(r.dirtyIndexes(), [1, 2]);
      assert.equal(r.replayStats.tornBytes, RECORD_SIZE + 100);
      assert.ok((await r.readBlock(1))!.equals(patternBlock(2)));
      await r.close();
    });
  });

  test('a block whose data in blocks.dat no longer matches its SHA-256 is never served; the journal is then refused', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      await j.writeBlock(4, patternBlock(4));
      await j.writeBlock(5, patternBlock(5));
      await j.flush();
      const slot = decodeRecord(await readFile(join(dir, 'index.log')), 0)!;
      await patch(join(dir, 'blocks.dat'), slot.slot * BLOCK_SIZE + 1000, Buffer.from('rot'));
      const bad = slot.blockIndex;
      const good = bad === 4 ? 5 : 4;
      await assert.rejects(j.readBlock(bad), (e: unknown) => e instanceof JournalDamagedError && new RegExp(`block ${bad} in blocks.dat`).test(e.message));
      await assert.rejects(j.readBlockInto(bad, Buffer.alloc(BLOCK_SIZE)), JournalDamagedError);
      assert.ok((await j.readBlock(good))!.equals(patternBlock(good)));
      await j.abandon();
      await assert.rejects(reopen(dir), new RegExp(`block ${bad} in blocks.dat .*does not match`));
      const s = await reopen(dir, { salvage: true });
      assert.deepEqual(s.salvage!.lostBlocks, [bad]);
      assert.deepEqual(s.dirtyIndexes(), [good]);
      assert.equal(s.meta.damage, undefined);
      await s.close();
    });
  });

  test('a write in progress when flush is called is complete in what the flush records', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      const writes = [];
      for (let i = 0; i < 32; i++) writes.push(j.writeBlock(i, patternBlock(100 + i)));
      const f = j.flush(); // called while the writes are in flight
      for (let i = 0; i < 32; i++) writes.push(j.writeBlock(i + 40, patternBlock(200 + i)));
      await Promise.all([...writes, f]);
      for (let i = 0; i < 32; i++) assert.equal(j.durableChecksum(i), sha256Base64(patternBlock(100 + i)));
      const r = await reopen(dir);
      for (const i of r.dirtyIndexes()) {
        const data = (await r.readBlock(i))!;
        assert.equal(sha256Base64(data), r.durableChecksum(i), `block ${i} matches its record`);
      }
      assert.ok(r.dirtyIndexes().length >= 32);
      await r.close();
    });
  });

  test('a checksum given with a whole-block write is recorded; a later partial in-place write makes the flush hash the slot', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir);
      const a = patternBlock(1);
      await j.writeBlock(4, a, undefined, sha256Base64(a));
      const b = Buffer.from(a);
      b.fill(9, 100, 200);
      await j.writeBlock(5, a, undefined, sha256Base64(a));
      await j.writeBlock(5, b, { offset: 100, length: 100 }); // in place, no checksum
      await j.flush();
      assert.equal(j.durableChecksum(4), sha256Base64(a));
      assert.equal(j.durableChecksum(5), sha256Base64(b));
      const k = await reopen(dir);
      assert.equal(k.durableChecksum(5), sha256Base64(b));
      assert.ok((await k.readBlock(5))!.equals(b));
      const into = Buffer.alloc(BLOCK_SIZE);
      assert.equal(await k.readBlockInto(5, into), true);
      assert.ok(into.equals(b));
      assert.equal(await k.readBlockInto(6, into), undefined);
    });
  });

  test('the index is compacted when history dominates, and replays the same', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init(), { compactThreshold: 8 });
      for (let round = 0; round < 20; round++) {
        await j.writeBlock(round % 3, patternBlock(round));
        await j.flush();
      }
      assert.ok((await stat(join(dir, 'index.log'))).size <= 12 * RECORD_SIZE, 'bounded by compaction');
      const r = await reopen(dir);
      assert.deepEqual(r.dirtyIndexes(), [0, 1, 2]);
      assert.ok((await r.readBlock(1))!.equals(patternBlock(19)));
      assert.ok((await r.readBlock(0))!.equals(patternBlock(18)));
      await r.close();
    });
  });

  test('memory stays bounded: 256 MiB written holds no block data in memory', async () => {
    v8.setFlagsFromString('--expose_gc');
    const gc = vm.runInNewContext('gc') as () => void;
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      const block = patternBlock(7);
      gc();
      const before = process.memoryUsage().arrayBuffers;
      for (let i = 0; i < 512; i++) {
        block.writeUInt32LE(i, 0);
        await j.writeBlock(i, block);
        if (i % 64 === 63) await j.flush();
      }
      await j.flush();
      gc();
      const grown = process.memoryUsage().arrayBuffers - before;
      assert.ok(grown < 16 * 1024 * 1024, `arrayBuffers grew by ${grown} bytes for 256 MiB written`);
      assert.equal(j.dirtyBlockCount, 512);
      await j.close();
    });
  });

  test('one process at a time: a live owner is refused, a dead one (kill -9) is taken over', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      await j.close();
      const holder = await holdLock(join(dir, LOCK_FILE));
      try {
        await assert.rejects(Journal.open(dir), (e: unknown) => e instanceof JournalBusyError && e.pid === holder.pid);
        assert.equal(journalLockHolder(dir), holder.pid);
        const ro = await Journal.open(dir, { readOnly: true });
        assert.equal(ro.dirtyBlockCount, 0);
        await ro.close();
      } finally {
        await holder.kill9();
      }
      const r = await Journal.open(dir);
      assert.equal(journalLockHolder(dir), process.pid);
      await assert.rejects(Journal.open(dir), JournalBusyError, 'a second open in the same process is refused too');
      await r.close();
      assert.equal(journalLockHolder(dir), undefined, 'lock released on close');
    });
  });


  test('bad input: out-of-volume index, wrong size, not a journal, already a journal', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      await assert.rejects(j.writeBlock(2048, patternBlock(1)), RangeError);
      await assert.rejects(j.writeBlock(0, Buffer.alloc(10)), RangeError);
      await j.close();
      await assert.rejects(Journal.create(dir, init()), JournalError);
      await assert.rejects(Journal.open(join(dir, 'nope')), JournalError);
    });
  });

  test('updateMeta replaces meta.json atomically', async () => {
    await withJournal(async (dir) => {
      const j = await create(dir, init());
      await Promise.all([j.updateMeta({ state: 'committing' }), j.updateMeta({ childSnapshotId: 'snap-00000000000000001' })]);
      const meta = await Journal.readMeta(dir);
      assert.equal(meta.childSnapshotId, 'snap-00000000000000001');
      assert.equal(meta.state, 'committing', 'both updates kept');
      assert.equal(j.meta.childSnapshotId, 'snap-00000000000000001');
      await j.close();
    });
  });
});
