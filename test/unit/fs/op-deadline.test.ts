/**
 * Op deadlines (src/fs/op-deadline.ts and the signal plumbing below it): a read or write that
 * cannot finish in time is answered EIO by the adapter, its kernel buffer is never touched after
 * that answer, a write answered EIO never reaches the journal, and the waits below (limiter
 * queue, per-block lock, shared fetch) end with the deadline.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { RequestLimiter } from '../../../src/ebs/limiter.js';
import { FuseAdapter } from '../../../src/fs/fuse-adapter.js';
import { DeadlineError, opDeadlineMs, runWithDeadline } from '../../../src/fs/op-deadline.js';
import { VolumeFile } from '../../../src/fs/volume-file.js';
import { CacheStore } from '../../../src/store/cache-store.js';
import type { BlockReader, ReadBlockOptions } from '../../../src/store/block-store.js';
import { Stats } from '../../../src/util/stats.js';
import { Journal } from '../../../src/writeback/journal.js';
import { KeyedMutex, OverlayStore } from '../../../src/writeback/overlay-store.js';
import { PARENT_ID, patternBlock, tempDir } from '../writeback/fixtures.js';

const SNAP = 'snap-0123456789abcdef0';
const IMG = `/${SNAP}.img`;
const EIO = -5;

/** A reader whose blocks arrive only when `release()` is called; it ignores deadlines (a shared fetch). */
class GatedReader implements BlockReader {
  readonly signals: (AbortSignal | undefined)[] = [];
  private gate!: () => void;
  private readonly opened = new Promise<void>((r) => (this.gate = r));
  settled = 0;
  constructor(private readonly blocks: Map<number, Buffer>) {}
  async readBlock(index: number, opts?: ReadBlockOptions): Promise<Buffer | null> {
    this.signals.push(opts?.signal);
    await this.opened;
    this.settled++;
    return this.blocks.get(index) ?? null;
  }
  release(): void {
    this.gate();
  }
}

function call(fn: (...a: any[]) => void, ...args: unknown[]): Promise<any[]> {
  return new Promise((resolve) => fn(...args, (...r: any[]) => resolve(r)));
}

const tick = () => new Promise((r) => setImmediate(r));

/** Waits until the adapter's abandoned work has ended (a condition, not a time). */
async function drained(adapter: FuseAdapter): Promise<void> {
  while (adapter.inFlight > 0) await new Promise((r) => setTimeout(r, 5));
}

describe('op deadlines', () => {
  test('runWithDeadline answers once: the result in time, else DeadlineError with the signal already aborted', async () => {
    const answers: unknown[] = [];
    await runWithDeadline(1_000, async () => 7, (o) => answers.push(o));
    assert.deepEqual(answers, [{ ok: true, value: 7 }]);

    let seen: AbortSignal | undefined;
    let finish!: (v: number) => void;
    const late: unknown[] = [];
    const done = runWithDeadline(20, (signal) => {
      seen = signal;
      return new Promise<number>((r) => (finish = r));
    }, (o) => late.push({ ...o, abortedAtAnswer: seen!.aborted }));
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(late.length, 1);
    const first = late[0] as { ok: boolean; err: unknown; abortedAtAnswer: boolean };
    assert.equal(first.ok, false);
    assert.ok(first.err instanceof DeadlineError);
    assert.equal(first.abortedAtAnswer, true);
    finish(1);
    await done;
    assert.equal(late.length, 1, 'answered twice');
  });

  test('EBSMOUNT_OP_DEADLINE_MS: default 60 s, values in range taken, others refused', () => {
    assert.equal(opDeadlineMs({}), 60_000);
    assert.equal(opDeadlineMs({ EBSMOUNT_OP_DEADLINE_MS: '1500' }), 1500);
    assert.throws(() => opDeadlineMs({ EBSMOUNT_OP_DEADLINE_MS: '80000' }), /EBSMOUNT_OP_DEADLINE_MS/);
    assert.throws(() => opDeadlineMs({ EBSMOUNT_OP_DEADLINE_MS: 'soon' }), /EBSMOUNT_OP_DEADLINE_MS/);
  });

  test('a read past its deadline is answered EIO and its buffer is never written afterwards', async () => {
    // one block, and a read straddling two blocks
    for (const [pos, len] of [[4096, 65_536], [BLOCK_SIZE - 4096, 8192]] as const) {
      const lower = new GatedReader(new Map([[0, patternBlock(1)], [1, patternBlock(2)]]));
      const file = new VolumeFile({ sizeBytes: 4 * BLOCK_SIZE, reader: lower, stats: new Stats(), allocatedBlocks: () => 2 });
      const adapter = new FuseAdapter({ file, snapshotId: SNAP, allowOther: false, uid: 0, gid: 0, deadlineMs: 30 });
      const ops = adapter.ops();
      const buf = Buffer.alloc(len, 0xaa);
      const [errno] = await call(ops.read!, IMG, 1, buf, len, pos);
      assert.equal(errno, EIO);
      assert.ok(lower.signals.at(-1)?.aborted, 'the reader was not told the deadline passed');
      lower.release();
      await drained(adapter);
      assert.ok(lower.settled > 0);
      assert.ok(buf.every((b) => b === 0xaa), 'the buffer was written after the op was answered');
    }
  });

  test('a write past its deadline is answered EIO and never reaches the journal; its buffer is copied at once', async () => {
    const t = await tempDir();
    const journal = await Journal.create(join(t.dir, 'j'), { journalId: 'j', parentSnapshotId: PARENT_ID, volumeSizeGiB: 1 });
    try {
      const lower = new GatedReader(new Map([[3, patternBlock(3)]]));
      const overlay = new OverlayStore({ journal, lower });
      const file = new VolumeFile({ sizeBytes: 1024 ** 3, reader: overlay, writer: overlay, stats: new Stats(), allocatedBlocks: () => 0 });
      // Short deadline for the write that must miss it (its parent read is gated: always late);
      // a long one for the writes that must not (no timing in the assertions).
      const hasty = new FuseAdapter({ file, snapshotId: SNAP, allowOther: false, uid: 0, gid: 0, deadlineMs: 30 });
      const patient = new FuseAdapter({ file, snapshotId: SNAP, allowOther: false, uid: 0, gid: 0, deadlineMs: 60_000 }).ops();
      // A partial write inside block 3 needs the parent's block (gated): past the deadline.
      const late = Buffer.alloc(4096, 0x11);
      const [errno] = await call(hasty.ops().write!, IMG, 1, late, late.length, 3 * BLOCK_SIZE + 8192);
      assert.equal(errno, EIO);
      // A whole-block write needs no parent: acknowledged.
      const whole = patternBlock(9);
      const kernelBuf = Buffer.from(whole);
      const pending = call(patient.write!, IMG, 1, kernelBuf, BLOCK_SIZE, 5 * BLOCK_SIZE);
      kernelBuf.fill(0x77); // the kernel reuses its buffer once answered: ebsmount must have copied
      assert.deepEqual(await pending, [BLOCK_SIZE]);
      lower.release();
      await drained(hasty);
      assert.equal(lower.settled, 1, 'the parent read never finished');
      const [fsyncErr] = await call(patient.fsync!, IMG, false, 1);
      assert.equal(fsyncErr, 0);
      assert.deepEqual(journal.dirtyIndexes(), [5], 'the journal holds a write that was answered EIO');
      assert.ok((await journal.readBlock(5))!.equals(whole));
    } finally {
      await journal.abandon();
      await t.cleanup();
    }
  });

  test('limiter: a queued job whose signal aborts is dropped and never runs', async () => {
    const limiter = new RequestLimiter({ maxConcurrency: 1 });
    let releaseFirst!: () => void;
    const first = limiter.run(() => new Promise<void>((r) => (releaseFirst = r)));
    const controller = new AbortController();
    let ran = false;
    const second = limiter.run(async () => {
      ran = true;
    }, 'demand', controller.signal);
    const third = limiter.run(async () => 3);
    assert.equal(limiter.queued, 2);
    controller.abort(new Error('deadline'));
    await assert.rejects(second, /deadline/);
    assert.equal(limiter.queued, 1);
    releaseFirst();
    await first;
    assert.equal(await third, 3);
    assert.equal(ran, false);
  });

  test('KeyedMutex: a waiter that gives up passes its turn on', async () => {
    const m = new KeyedMutex();
    const r1 = await m.lock(1);
    const c = new AbortController();
    const w2 = m.lock(1, c.signal);
    const w3 = m.lock(1);
    c.abort(new Error('deadline'));
    await assert.rejects(w2, /deadline/);
    r1();
    const r3 = await w3;
    r3();
    assert.equal(m.isLocked(1), false);
  });

  test('CacheStore: the shared fetch is abandoned only when every reader waiting for it gave up', async () => {
    const lower = new GatedReader(new Map([[0, patternBlock(4)]]));
    const cache = new CacheStore({ source: lower, cacheSizeBytes: 64 * BLOCK_SIZE, stats: new Stats() });
    const a = new AbortController();
    const b = new AbortController();
    const ra = cache.readBlock(0, { signal: a.signal });
    const rb = cache.readBlock(0, { signal: b.signal });
    assert.equal(lower.signals.length, 1, 'one fetch for both readers');
    const shared = lower.signals[0]!;
    a.abort(new Error('a late'));
    await assert.rejects(ra, /a late/);
    assert.equal(shared.aborted, false, 'aborted while another reader still waits');
    b.abort(new Error('b late'));
    await assert.rejects(rb, /b late/);
    assert.equal(shared.aborted, true);
    // The fetch, once it lands, still fills the cache for the next reader.
    lower.release();
    await tick();
    await tick();
    const again = await cache.readBlock(0);
    assert.ok(again!.equals(patternBlock(4)));
    assert.equal(lower.signals.length, 1, 'the landed fetch was not reused');
  });
});
