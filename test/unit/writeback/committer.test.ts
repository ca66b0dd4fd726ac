import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { EbsApi } from '../../../src/ebs/api.js';
import { linearChecksum, sha256Base64 } from '../../../src/ebs/checksum.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { EbsError, Reason } from '../../../src/ebs/errors.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { clientTokenFor, CommitError, commitJournal, type CommitOptions } from '../../../src/writeback/committer.js';
import { Journal } from '../../../src/writeback/journal.js';
import { describeJournal } from '../../../src/writeback/journal-registry.js';
import { FAST_RETRY, noSleep } from '../store/fixtures.js';
import { patternBlock, tempDir } from './fixtures.js';

const throttled = () => new EbsError('RequestThrottledException', 'slow down', { status: 400 });
const internal = () => new EbsError('InternalServerException', 'boom', { status: 500 });
const missing = () => new EbsError('ResourceNotFoundException', 'The snapshot does not exist.', { status: 404, reason: Reason.SNAPSHOT_NOT_FOUND });
const denied = () => new EbsError('AccessDeniedException', 'no', { status: 403 });

interface Setup {
  api: MemoryEbsApi;
  parentId: string;
  parent: Map<number, Buffer>;
  dir: string;
  journal: Journal;
  /** The child's expected complete view. */
  expected: Map<number, Buffer>;
  opts(extra?: Partial<CommitOptions>): CommitOptions;
  reopen(): Promise<Journal>;
  done(): Promise<void>;
}

/**
 * Parent blocks 0, 1, 5; the journal zeroes 1 (parent has data), writes 2 (new), rewrites 5,
 * zeroes 7 (parent has none), and rewrites 0 with the parent's exact bytes.
 */
async function setup(opts: { kmsKeyArn?: string } = {}): Promise<Setup> {
  const api = new MemoryEbsApi();
  const parent = new Map([[0, patternBlock(100)], [1, patternBlock(101)], [5, patternBlock(105)]]);
  const parentId = api.createCompletedSnapshot(parent, 1, { kmsKeyArn: opts.kmsKeyArn });
  const t = await tempDir();
  const dir = join(t.dir, 'j');
  const journal = await Journal.create(dir, { journalId: '6f1c2d3e-aaaa-bbbb-cccc-0123456789ab', parentSnapshotId: parentId, volumeSizeGiB: 1, description: 'fix-up', tags: [{ key: 'case', value: '42' }] });
  await journal.writeBlock(1, Buffer.alloc(BLOCK_SIZE));
  await journal.writeBlock(2, patternBlock(2));
  const five = Buffer.from(parent.get(5)!);
  five.fill(0xaa, 1000, 5000);
  await journal.writeBlock(5, five);
  await journal.writeBlock(7, Buffer.alloc(BLOCK_SIZE));
  await journal.writeBlock(0, Buffer.from(parent.get(0)!));
  const expected = new Map([[0, parent.get(0)!], [1, Buffer.alloc(BLOCK_SIZE)], [2, patternBlock(2)], [5, five], [7, Buffer.alloc(BLOCK_SIZE)]]);
  const s: Setup = {
    api, parentId, parent, dir, journal, expected,
    opts: (extra = {}) => ({ api, retryPolicy: FAST_RETRY, sleep: noSleep, ...extra }),
    async reopen() {
      await s.journal.abandon();
      s.journal = await Journal.open(dir);
      return s.journal;
    },
    async done() {
      await s.journal.abandon();
      await t.cleanup();
    },
  };
  return s;
}

/** The view of `id` with blocks reading as zeros dropped, for comparing with an expected view. */
function effective(api: MemoryEbsApi, id: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const [i, b] of api.blocksOf(id)) if (b.some((x) => x !== 0)) out.set(i, sha256Base64(b));
  return out;
}

function effectiveOf(blocks: Map<number, Buffer>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [i, b] of blocks) if (b.some((x) => x !== 0)) out.set(i, sha256Base64(b));
  return out;
}

/** An EbsApi delegating to `api` (methods bound), whose methods a test may replace. */
function wrap(api: MemoryEbsApi): EbsApi {
  return {
    listSnapshotBlocks: api.listSnapshotBlocks.bind(api),
    listChangedBlocks: api.listChangedBlocks.bind(api),
    getSnapshotBlock: api.getSnapshotBlock.bind(api),
    startSnapshot: api.startSnapshot.bind(api),
    putSnapshotBlock: api.putSnapshotBlock.bind(api),
    completeSnapshot: api.completeSnapshot.bind(api),
  };
}

function children(api: MemoryEbsApi, parentId: string): string[] {
  return api.snapshotIds().filter((id) => api.infoOf(id).parentSnapshotId === parentId);
}

describe('commitJournal', () => {
  test('writes every dirty block (zeros over parent data included) with StartSnapshot parameters and LINEAR checksum', async () => {
    const s = await setup();
    let completeArgs: { count: number; linear?: string } | undefined;
    const spy = wrap(s.api);
    spy.completeSnapshot = (id, count, o) => {
      completeArgs = { count, linear: o?.linearChecksum };
      return s.api.completeSnapshot(id, count, o);
    };
    let started: Parameters<EbsApi['startSnapshot']>[0] | undefined;
    spy.startSnapshot = (input) => {
      started = input;
      return s.api.startSnapshot(input);
    };
    try {
      const progress: [number, number][] = [];
      const result = await commitJournal(s.journal, s.opts({ api: spy, onProgress: (d, t) => progress.push([d, t]) }));
      assert.ok(result.snapshotId);
      const child = result.snapshotId!;
      assert.equal(s.api.statusOf(child), 'completed');
      assert.equal(s.api.infoOf(child).parentSnapshotId, s.parentId);
      assert.equal(started!.volumeSizeGiB, 1);
      assert.equal(started!.parentSnapshotId, s.parentId);
      assert.equal(started!.description, 'fix-up');
      assert.deepEqual(started!.tags, [{ key: 'case', value: '42' }]);
      assert.equal(started!.clientToken, clientTokenFor('6f1c2d3e-aaaa-bbbb-cccc-0123456789ab'));
      assert.ok(started!.clientToken!.length <= 64);

      // All five dirty blocks were put (no parent knowledge given: nothing skipped).
      const puts = s.api.calls.filter((c) => c.op === 'putSnapshotBlock').map((c) => c.index).sort((a, b) => a! - b!);
      assert.deepEqual(puts, [0, 1, 2, 5, 7]);
      assert.deepEqual(effective(s.api, child), effectiveOf(s.expected));
      assert.ok(s.api.blocksOf(child).get(1)!.every((b) => b === 0), 'block 1 (parent data) now reads as zeros');
      assert.equal(completeArgs!.count, 5);
      const want = linearChecksum([...s.expected].map(([i, b]) => [i, sha256Base64(b)] as [number, string]));
      assert.equal(completeArgs!.linear, want);
      assert.deepEqual(progress.at(-1), [5, 5]);
      assert.deepEqual(progress[0], [0, 5]);

      // meta: committed with the child; data files gone.
      const meta = await Journal.readMeta(s.dir);
      assert.equal(meta.state, 'committed');
      assert.equal(meta.childSnapshotId, child);
      await assert.rejects(stat(join(s.dir, 'blocks.dat')));

      // Again: the same id, no request.
      const calls = s.api.calls.length;
      const reopened = await Journal.open(s.dir);
      const again = await commitJournal(reopened, s.opts());
      await reopened.close();
      assert.equal(again.snapshotId, child);
      assert.equal(again.alreadyCommitted, true);
      assert.equal(s.api.calls.length, calls);
    } finally {
      await s.done();
    }
  });

  test('with parent knowledge, blocks equal to the parent are skipped, zeros over parent data are not', async () => {
    const s = await setup();
    try {
      const result = await commitJournal(s.journal, s.opts({
        parentChecksum: (i) => (s.parent.has(i) ? sha256Base64(s.parent.get(i)!) : 'absent'),
      }));
      const puts = s.api.calls.filter((c) => c.op === 'putSnapshotBlock').map((c) => c.index).sort((a, b) => a! - b!);
      assert.deepEqual(puts, [1, 2, 5], 'block 0 (same as parent) and 7 (zero, parent none) skipped; 1 (zero over data) written');
      assert.equal(result.blocksSkipped, 2);
      assert.deepEqual(effective(s.api, result.snapshotId!), effectiveOf(s.expected));
    } finally {
      await s.done();
    }
  });

  test('over an encrypted parent, zeros where the parent has no block are written too', async () => {
    const s = await setup({ kmsKeyArn: 'arn:aws:kms:us-east-1:111122223333:key/test' });
    try {
      const result = await commitJournal(s.journal, s.opts({
        parentChecksum: (i) => (s.parent.has(i) ? sha256Base64(s.parent.get(i)!) : 'absent'),
      }));
      const puts = s.api.calls.filter((c) => c.op === 'putSnapshotBlock').map((c) => c.index).sort((a, b) => a! - b!);
      assert.deepEqual(puts, [1, 2, 5, 7], 'block 7 (zeros, parent none) written: an encrypted snapshot may read random data there');
      assert.equal(result.blocksSkipped, 1);
      assert.equal(result.blocksWritten, 4);
      assert.equal(s.api.statusOf(result.snapshotId!), 'completed', 'count and LINEAR checksum cover block 7');
      assert.ok(s.api.blocksOf(result.snapshotId!).get(7)?.every((b) => b === 0));
    } finally {
      await s.done();
    }
  });

  test('throttling, 500s and the "does not exist" window during commit: it still succeeds', async () => {
    const s = await setup();
    try {
      s.api.injectFailure('startSnapshot', throttled(), 2);
      s.api.injectFailure('startSnapshot', internal(), 1);
      s.api.injectFailure('putSnapshotBlock', missing(), 6);
      s.api.injectFailure('putSnapshotBlock', throttled(), 4);
      s.api.injectFailure('putSnapshotBlock', internal(), 4);
      s.api.injectFailure('completeSnapshot', missing(), 1);
      s.api.injectFailure('completeSnapshot', internal(), 2);
      const result = await commitJournal(s.journal, s.opts({
        uploadConcurrency: 3,
        retryPolicy: { maxAttempts: 30, baseDelayMs: 1, maxDelayMs: 2, budgetMs: 60_000 },
      }));
      assert.equal(s.api.statusOf(result.snapshotId!), 'completed');
      assert.deepEqual(effective(s.api, result.snapshotId!), effectiveOf(s.expected));
      assert.equal(children(s.api, s.parentId).length, 1, 'exactly one child');
    } finally {
      await s.done();
    }
  });

  test('a commit that fails keeps the journal, says how to resume, and the resumed commit reuses the same child', async () => {
    const s = await setup();
    try {
      // Two puts go through, then a fatal error.
      const spy = wrap(s.api);
      let puts = 0;
      spy.putSnapshotBlock = (id, index, data, checksum) => {
        if (++puts > 2) return Promise.reject(denied());
        return s.api.putSnapshotBlock(id, index, data, checksum);
      };
      await assert.rejects(commitJournal(s.journal, s.opts({ api: spy, uploadConcurrency: 1 })), (e: unknown) => {
        assert.ok(e instanceof CommitError);
        assert.match(e.message, /ebsmount commit --journal /);
        assert.ok(e.message.includes(s.dir));
        assert.ok(!e.message.includes('\n'));
        return true;
      });
      const meta = await Journal.readMeta(s.dir);
      assert.equal(meta.state, 'committing');
      const firstChild = meta.childSnapshotId!;
      assert.equal(s.api.statusOf(firstChild), 'pending');
      assert.match(meta.lastError ?? '', /access denied/i);

      // Crash and resume from disk.
      const j = await s.reopen();
      const result = await commitJournal(j, s.opts());
      assert.equal(result.snapshotId, firstChild, 'same ClientToken, same child');
      assert.equal(result.resumed, true);
      assert.equal(children(s.api, s.parentId).length, 1, 'exactly one child');
      assert.equal(s.api.statusOf(firstChild), 'completed');
      assert.deepEqual(effective(s.api, firstChild), effectiveOf(s.expected));
    } finally {
      await s.done();
    }
  });

  test('a resumed first attempt that had skipped blocks still completes with a consistent count', async () => {
    const s = await setup();
    try {
      const parentChecksum = (i: number) => (s.parent.has(i) ? sha256Base64(s.parent.get(i)!) : 'absent' as const);
      s.api.injectFailure('completeSnapshot', denied(), 1);
      await assert.rejects(commitJournal(s.journal, s.opts({ parentChecksum })), CommitError);
      const result = await commitJournal(await s.reopen(), s.opts({ parentChecksum }));
      assert.equal(s.api.statusOf(result.snapshotId!), 'completed', 'count and checksum matched what the child holds');
      assert.equal(children(s.api, s.parentId).length, 1);
      assert.deepEqual(effective(s.api, result.snapshotId!), effectiveOf(s.expected));
    } finally {
      await s.done();
    }
  });

  test('a crash after CompleteSnapshot but before meta.json said so: the resume finds the child completed', async () => {
    const s = await setup();
    try {
      const result = await commitJournal(s.journal, s.opts({ dropDataWhenDone: false }));
      const child = result.snapshotId!;
      // Roll meta back to what a crash right after CompleteSnapshot leaves.
      const j = await s.reopen();
      await j.updateMeta({ state: 'committing', childSnapshotId: child });
      const putsBefore = s.api.counts('putSnapshotBlock');
      const again = await commitJournal(await s.reopen(), s.opts());
      assert.equal(again.snapshotId, child);
      assert.equal(s.api.counts('putSnapshotBlock'), putsBefore, 'nothing uploaded again');
      assert.equal(children(s.api, s.parentId).length, 1);
      assert.equal((await Journal.readMeta(s.dir)).state, 'committed');
    } finally {
      await s.done();
    }
  });

  test('"not pending" from CompleteSnapshot after a lost answer counts as done when the child is completed', async () => {
    const s = await setup();
    try {
      const spy = wrap(s.api);
      let first = true;
      spy.completeSnapshot = async (id, count, o) => {
        const r = await s.api.completeSnapshot(id, count, o);
        if (first) {
          first = false;
          throw new EbsError('NetworkError', 'socket hang up', { reason: 'ECONNRESET' }); // the answer was lost
        }
        return r;
      };
      const result = await commitJournal(s.journal, s.opts({ api: spy }));
      assert.equal(s.api.statusOf(result.snapshotId!), 'completed');
      assert.equal(s.api.counts('completeSnapshot'), 2);
    } finally {
      await s.done();
    }
  });

  test('a child in state error is explained; --restart makes a new one', async () => {
    const s = await setup();
    try {
      const spy = wrap(s.api);
      spy.completeSnapshot = (id, _count, o) => s.api.completeSnapshot(id, 1, o); // wrong count: the service errors it
      await assert.rejects(commitJournal(s.journal, s.opts({ api: spy })), (e: unknown) => e instanceof CommitError && /--restart/.test(e.message));
      const bad = (await Journal.readMeta(s.dir)).childSnapshotId!;
      assert.equal(s.api.statusOf(bad), 'error');
      // Without --restart, the same errored child is found again and explained.
      await assert.rejects(commitJournal(await s.reopen(), s.opts()), (e: unknown) => e instanceof CommitError && /state error/.test(e.message));
      const result = await commitJournal(await s.reopen(), s.opts({ restart: true }));
      assert.notEqual(result.snapshotId, bad);
      assert.equal(s.api.statusOf(result.snapshotId!), 'completed');
      assert.deepEqual(effective(s.api, result.snapshotId!), effectiveOf(s.expected));
      assert.equal(children(s.api, s.parentId).length, 2);
    } finally {
      await s.done();
    }
  });

  test('CompleteSnapshot answers pending: the journal is kept until the child is seen completed', async () => {
    const s = await setup();
    try {
      s.api.completeAsPending(3); // three listings still see it pending
      let clock = 0;
      const waitOpts = { now: () => clock, sleep: async (ms: number) => void (clock += ms), completionWaitMs: 2_500 };
      const first = await commitJournal(s.journal, s.opts(waitOpts));
      assert.equal(first.pending, true);
      const child = first.snapshotId!;
      let meta = await Journal.readMeta(s.dir);
      assert.equal(meta.state, 'committing', 'marked committed while the child is pending');
      assert.equal(meta.completionRequested, true);
      assert.equal((await describeJournal(s.dir)).state, 'completing');
      await stat(join(s.dir, 'blocks.dat')); // data kept
      const puts = s.api.counts('putSnapshotBlock');
      // A later commit only waits for it: no new child, nothing uploaded again.
      const second = await commitJournal(await s.reopen(), s.opts(waitOpts));
      assert.equal(second.snapshotId, child);
      assert.equal(second.pending, undefined);
      assert.equal(s.api.counts('putSnapshotBlock'), puts);
      assert.equal(s.api.statusOf(child), 'completed');
      meta = await Journal.readMeta(s.dir);
      assert.equal(meta.state, 'committed');
      assert.equal(meta.completionRequested, undefined);
      await assert.rejects(stat(join(s.dir, 'blocks.dat')), 'data dropped once completed');
      assert.deepEqual(effective(s.api, child), effectiveOf(s.expected));
      assert.equal(children(s.api, s.parentId).length, 1);
    } finally {
      await s.done();
    }
  });

  test('a pending child that goes to error is said so, the journal kept, and --restart makes a new one', async () => {
    const s = await setup();
    try {
      s.api.completeAsPending(1, 'error');
      let clock = 0;
      const waitOpts = { now: () => clock, sleep: async (ms: number) => void (clock += ms) };
      await assert.rejects(commitJournal(s.journal, s.opts(waitOpts)), (e: unknown) => e instanceof CommitError && /state error.*--restart/.test(e.message));
      const bad = (await Journal.readMeta(s.dir)).childSnapshotId!;
      assert.equal(s.api.statusOf(bad), 'error');
      assert.equal((await Journal.readMeta(s.dir)).state, 'committing');
      const result = await commitJournal(await s.reopen(), s.opts({ restart: true }));
      assert.notEqual(result.snapshotId, bad);
      assert.equal(s.api.statusOf(result.snapshotId!), 'completed');
      assert.deepEqual(effective(s.api, result.snapshotId!), effectiveOf(s.expected));
    } finally {
      await s.done();
    }
  });

  test('no dirty blocks: no snapshot', async () => {
    const api = new MemoryEbsApi();
    const parentId = api.createCompletedSnapshot(new Map([[0, patternBlock(1)]]), 1);
    const t = await tempDir();
    try {
      const j = await Journal.create(join(t.dir, 'j'), { journalId: 'x', parentSnapshotId: parentId, volumeSizeGiB: 1 });
      const result = await commitJournal(j, { api, retryPolicy: FAST_RETRY, sleep: noSleep });
      assert.equal(result.snapshotId, null);
      assert.equal(api.counts('startSnapshot'), 0);
      const meta = await Journal.readMeta(join(t.dir, 'j'));
      assert.equal(meta.state, 'committed');
      assert.equal(meta.childSnapshotId, null);
    } finally {
      await t.cleanup();
    }
  });

  test('a damaged blocks.dat fails the commit before completion', async () => {
    const s = await setup();
    try {
      await s.journal.flush();
      const { open } = await import('node:fs/promises');
      const fh = await open(join(s.dir, 'blocks.dat'), 'r+');
      const { size } = await fh.stat();
      for (let off = 100; off < size; off += BLOCK_SIZE) await fh.write(Buffer.from([0x5a]), 0, 1, off);
      await fh.close();
      await assert.rejects(commitJournal(s.journal, s.opts()), (e: unknown) => e instanceof CommitError && /damaged/.test(e.message));
      assert.equal(s.api.counts('completeSnapshot'), 0);
    } finally {
      await s.done();
    }
  });

  test('at most uploadConcurrency puts in flight', async () => {
    const s = await setup();
    for (let i = 10; i < 40; i++) await s.journal.writeBlock(i, patternBlock(i));
    let inFlight = 0;
    let peak = 0;
    const spy = wrap(s.api);
    // The first puts wait until 4 are in flight (so the peak does not depend on how fast the
    // journal reads happen to be on a loaded machine); then a short delay lets a fifth show.
    let opened = false;
    const gate: (() => void)[] = [];
    spy.putSnapshotBlock = async (id, index, data, checksum) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      if (!opened && inFlight < 4) await new Promise<void>((r) => gate.push(r));
      else if (!opened) {
        opened = true;
        for (const r of gate.splice(0)) r();
      }
      await new Promise((r) => setTimeout(r, 2));
      try {
        return await s.api.putSnapshotBlock(id, index, data, checksum);
      } finally {
        inFlight--;
      }
    };
    try {
      await commitJournal(s.journal, s.opts({ api: spy, uploadConcurrency: 4 }));
      assert.equal(peak, 4);
    } finally {
      await s.done();
    }
  });

  test('clientTokenFor is deterministic and at most 64 characters', () => {
    assert.equal(clientTokenFor('abc'), clientTokenFor('abc'));
    assert.notEqual(clientTokenFor('abc'), clientTokenFor('abc', 1));
    assert.ok(clientTokenFor('x'.repeat(200)).length <= 64);
    assert.ok(clientTokenFor('6f1c2d3e-aaaa-bbbb-cccc-0123456789ab', 3).length <= 64);
  });
});
