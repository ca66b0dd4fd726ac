/**
 * importImage against MemoryEbsApi: what gets written (zero skipping, tail padding, parent
 * comparison incl. zeroed blocks), the parent rules, ClientToken idempotency, retries of puts,
 * parent reads and tokens, fatal failures, bounded concurrency, and progress.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { EbsError } from '../../../src/ebs/errors.js';
import { BLOCK_SIZE, GIB } from '../../../src/ebs/constants.js';
import { importImage, importClientToken, volumeSizeGiBFor } from '../../../src/transfer/importer.js';
import { UserError } from '../../../src/errors/user-error.js';
import { FAST, countingConcurrency, expireAfterFirstList, filled, noSleep, smallPages, tempDir, writeImage } from './helpers.js';

const tmp = await tempDir();
after(() => tmp.cleanup());
let n = 0;
const path = () => join(tmp.dir, `img${n++}.raw`);
const fast = { writePolicy: FAST, readPolicy: FAST, sleep: noSleep };

function puts(api: MemoryEbsApi, id: string): number[] {
  return api.calls.filter((c) => c.op === 'putSnapshotBlock' && c.snapshotId === id).map((c) => c.index!).sort((a, b) => a - b);
}

function zeros(): Buffer {
  return Buffer.alloc(BLOCK_SIZE);
}

test('volume size rounds up to whole GiB, at least 1', () => {
  assert.equal(volumeSizeGiBFor(1), 1);
  assert.equal(volumeSizeGiBFor(GIB), 1);
  assert.equal(volumeSizeGiBFor(GIB + 1), 2);
});

test('without parent: only non-zero blocks are written; tail block padded; completed', async () => {
  const api = new MemoryEbsApi();
  const p = path();
  const size = 9 * BLOCK_SIZE + 1000; // 10 blocks, the last one 1000 bytes
  const content = new Map([[0, filled(1)], [4, filled(2)], [9, filled(3)]]);
  await writeImage(p, size, content);
  const r = await importImage({ api, imagePath: p, ...fast });
  assert.equal(r.status, 'completed');
  assert.equal(r.volumeSizeGiB, 1);
  assert.equal(r.blocksScanned, 10);
  assert.equal(r.blocksWritten, 3);
  assert.deepEqual(puts(api, r.snapshotId), [0, 4, 9]);
  const stored = api.blocksOf(r.snapshotId);
  assert.deepEqual([...stored.keys()], [0, 4, 9]);
  assert.ok(stored.get(0)!.equals(filled(1)));
  const tail = Buffer.alloc(BLOCK_SIZE);
  filled(3).copy(tail, 0, 0, 1000);
  assert.ok(stored.get(9)!.equals(tail), 'tail block is the last 1000 bytes padded with zeros');
  assert.equal(api.statusOf(r.snapshotId), 'completed');
});

test('an image of only zeros gives an empty completed snapshot', async () => {
  const api = new MemoryEbsApi();
  const p = path();
  await writeImage(p, 3 * BLOCK_SIZE, new Map());
  const r = await importImage({ api, imagePath: p, ...fast });
  assert.equal(r.blocksWritten, 0);
  assert.equal(api.statusOf(r.snapshotId), 'completed');
  assert.equal(api.blocksOf(r.snapshotId).size, 0);
});

test('with parent: only differing blocks are written, zeros included where the parent has data', async () => {
  const api = new MemoryEbsApi();
  const parent = api.createCompletedSnapshot(new Map([[0, filled(10)], [1, filled(11)], [2, filled(12)], [5, filled(15)], [6, zeros()]]), 1);
  const p = path();
  // 0 same, 1 zeroed, 2 changed, 3 zero (parent has none), 4 new, 5 same, 6 zero over zero, 7 new.
  await writeImage(p, 8 * BLOCK_SIZE, new Map([[0, filled(10)], [2, filled(99)], [4, filled(44)], [5, filled(15)], [7, filled(77)]]));
  const r = await importImage({ api, imagePath: p, parentSnapshotId: parent, description: 'child', tags: [{ key: 'case', value: 'parent' }], ...fast });
  assert.deepEqual(puts(api, r.snapshotId), [1, 2, 4, 7]);
  assert.equal(r.blocksWritten, 4);
  assert.equal(r.parentBlocksRead, 5);
  const child = api.blocksOf(r.snapshotId);
  assert.ok(child.get(1)!.equals(zeros()), 'block the parent had is now zeros');
  assert.ok(child.get(2)!.equals(filled(99)));
  assert.ok(child.get(0)!.equals(filled(10)), 'unchanged block inherited');
  assert.equal(child.has(3), false);
  const info = api.infoOf(r.snapshotId);
  assert.equal(info.parentSnapshotId, parent);
  assert.equal(info.description, 'child');
  assert.deepEqual(info.tags, [{ key: 'case', value: 'parent' }]);
});

test('over an encrypted parent, zero blocks the parent lacks are written too', async () => {
  const api = new MemoryEbsApi();
  const kmsKeyArn = 'arn:aws:kms:us-east-1:111122223333:key/test';
  const parent = api.createCompletedSnapshot(new Map([[0, filled(10)], [1, filled(11)], [6, zeros()]]), 1, { kmsKeyArn });
  const p = path();
  // 0 same, 1 zeroed, 2 and 3 zeros (parent has none), 4 new, 5 zeros (none), 6 zero over zero.
  await writeImage(p, 7 * BLOCK_SIZE, new Map([[0, filled(10)], [4, filled(44)]]));
  const r = await importImage({ api, imagePath: p, parentSnapshotId: parent, ...fast });
  assert.deepEqual(puts(api, r.snapshotId), [1, 2, 3, 4, 5], 'an encrypted snapshot may read random data where it has no block');
  assert.equal(api.infoOf(r.snapshotId).status, 'completed');
  assert.ok(api.blocksOf(r.snapshotId).get(3)!.equals(zeros()));
});

test('with parent: the parent listing is paged and merged in order', async () => {
  const mem = new MemoryEbsApi();
  const same = filled(5);
  const parentBlocks = new Map<number, Buffer>();
  for (let i = 0; i < 350; i++) parentBlocks.set(i, same);
  const parent = mem.createCompletedSnapshot(parentBlocks, 1);
  const image = new Map(parentBlocks);
  image.set(123, filled(6));
  image.set(349, zeros());
  image.set(360, filled(7));
  const p = path();
  await writeImage(p, 400 * BLOCK_SIZE, image);
  const r = await importImage({ api: smallPages(mem, 100), imagePath: p, parentSnapshotId: parent, ...fast });
  assert.deepEqual(puts(mem, r.snapshotId), [123, 349, 360]);
  assert.ok(mem.counts('listSnapshotBlocks') >= 4, 'four pages of 100');
});

test('parent larger than the image is refused before anything starts', async () => {
  const api = new MemoryEbsApi();
  const parent = api.createCompletedSnapshot(new Map([[0, filled(1)]]), 2);
  const p = path();
  await writeImage(p, 4 * BLOCK_SIZE, new Map([[0, filled(1)]]));
  await assert.rejects(importImage({ api, imagePath: p, parentSnapshotId: parent, ...fast }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /parent snapshot snap-\w+ is 2 GiB, larger than the image \(1 GiB\)/);
    return true;
  });
  assert.equal(api.counts('startSnapshot'), 0);
});

test('unknown parent: one-line not-found error, no snapshot started', async () => {
  const api = new MemoryEbsApi();
  const p = path();
  await writeImage(p, BLOCK_SIZE, new Map([[0, filled(1)]]));
  await assert.rejects(importImage({ api, imagePath: p, parentSnapshotId: 'snap-0000000000000dead', ...fast }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.equal(e.message, 'parent snapshot snap-0000000000000dead not found (check the id and the region)');
    return true;
  });
  assert.equal(api.counts('startSnapshot'), 0);
});

test('missing image, directory and empty image are one-line UserErrors', async () => {
  const api = new MemoryEbsApi();
  await assert.rejects(importImage({ api, imagePath: join(tmp.dir, 'nope.raw'), ...fast }), /image .*nope\.raw does not exist/);
  await assert.rejects(importImage({ api, imagePath: tmp.dir, ...fast }), /is a directory/);
  const empty = path();
  await writeFile(empty, '');
  await assert.rejects(importImage({ api, imagePath: empty, ...fast }), /is empty/);
  assert.equal(api.counts('startSnapshot'), 0);
});

test('ClientToken: importing the same image twice returns the same snapshot without uploading again', async () => {
  const api = new MemoryEbsApi();
  const p = path();
  await writeImage(p, 4 * BLOCK_SIZE, new Map([[1, filled(1)], [2, filled(2)]]));
  const a = await importImage({ api, imagePath: p, description: 'x', ...fast });
  const putsBefore = api.counts('putSnapshotBlock');
  const b = await importImage({ api, imagePath: p, description: 'x', ...fast });
  assert.equal(b.snapshotId, a.snapshotId);
  assert.equal(b.alreadyCompleted, true);
  assert.equal(api.counts('putSnapshotBlock'), putsBefore);
  // A different description is a different import.
  const c = await importImage({ api, imagePath: p, description: 'y', ...fast });
  assert.notEqual(c.snapshotId, a.snapshotId);
  assert.notEqual(importClientToken({ path: p, sizeBytes: 1, mtimeMs: 1 }), importClientToken({ path: p, sizeBytes: 1, mtimeMs: 2 }));
});

test('an interrupted import resumes the same pending snapshot', async () => {
  const api = new MemoryEbsApi();
  const p = path();
  await writeImage(p, 4 * BLOCK_SIZE, new Map([[0, filled(1)], [3, filled(3)]]));
  api.injectFailure('completeSnapshot', new EbsError('AccessDeniedException', 'denied', { status: 403 }), 1);
  await assert.rejects(importImage({ api, imagePath: p, ...fast }), /completing snapshot/);
  const first = api.snapshotIds().at(-1)!;
  assert.equal(api.statusOf(first), 'pending');
  const r = await importImage({ api, imagePath: p, ...fast });
  assert.equal(r.snapshotId, first);
  assert.equal(api.statusOf(first), 'completed');
  assert.deepEqual([...api.blocksOf(first).keys()], [0, 3]);
});

test('puts are retried: throttling, 5xx and "does not exist" right after start', async () => {
  const api = new MemoryEbsApi();
  const p = path();
  await writeImage(p, 4 * BLOCK_SIZE, new Map([[0, filled(1)], [1, filled(2)], [2, filled(3)]]));
  api.injectFailure('putSnapshotBlock', new EbsError('ResourceNotFoundException', 'snapshot does not exist', { status: 404 }), 2);
  api.injectFailure('putSnapshotBlock', new EbsError('RequestThrottledException', 'slow down', { status: 400 }), 2);
  api.injectFailure('putSnapshotBlock', new EbsError('InternalServerException', 'oops', { status: 500 }), 1);
  api.injectFailure('startSnapshot', new EbsError('InternalServerException', 'oops', { status: 500 }), 1);
  api.injectFailure('completeSnapshot', new EbsError('RequestThrottledException', 'slow', { status: 400 }), 1);
  const r = await importImage({ api, imagePath: p, concurrency: 2, ...fast });
  assert.equal(api.statusOf(r.snapshotId), 'completed');
  assert.equal(r.blocksWritten, 3);
  assert.ok(r.retries >= 5, `retries ${r.retries}`);
  assert.equal(api.counts('putSnapshotBlock'), 3 + 5);
});

test('a fatal put failure stops the import with one line naming the pending snapshot', async () => {
  const api = new MemoryEbsApi();
  const p = path();
  await writeImage(p, 4 * BLOCK_SIZE, new Map([[0, filled(1)], [1, filled(2)]]));
  api.injectFailure('putSnapshotBlock', new EbsError('AccessDeniedException', 'not authorized', { status: 403 }), 1);
  await assert.rejects(importImage({ api, imagePath: p, concurrency: 1, ...fast }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^import failed: access denied to new snapshot snap-\w+ \(check IAM permissions for ebs:StartSnapshot\/PutSnapshotBlock\/CompleteSnapshot/);
    assert.match(e.message, /left pending/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  assert.equal(api.counts('completeSnapshot'), 0);
});

test('parent reads: corrupt bodies and expired tokens are retried; the result is still exact', async () => {
  const mem = new MemoryEbsApi();
  const parent = mem.createCompletedSnapshot(new Map([[0, filled(1)], [1, filled(2)], [2, filled(3)]]), 1);
  const p = path();
  await writeImage(p, 3 * BLOCK_SIZE, new Map([[0, filled(1)], [1, filled(9)], [2, filled(3)]]));
  mem.corruptNext('getSnapshotBlock', 2);
  const r = await importImage({ api: expireAfterFirstList(mem), imagePath: p, parentSnapshotId: parent, concurrency: 1, ...fast });
  assert.deepEqual(puts(mem, r.snapshotId), [1], 'a corrupt parent body never makes an equal block look different');
  assert.ok(mem.counts('listSnapshotBlocks') >= 2, 'tokens re-listed');
  assert.ok(mem.counts('getSnapshotBlock') > 3, 'corrupt bodies refetched');
});

test('at most `concurrency` puts in flight', async () => {
  const mem = new MemoryEbsApi();
  mem.latencyMs = 5;
  const blocks = new Map<number, Buffer>();
  for (let i = 0; i < 40; i++) blocks.set(i, filled(i + 1));
  const p = path();
  await writeImage(p, 40 * BLOCK_SIZE, blocks);
  const c = countingConcurrency(mem, 'putSnapshotBlock');
  const r = await importImage({ api: c.api, imagePath: p, concurrency: 4, ...fast });
  assert.equal(r.blocksWritten, 40);
  assert.ok(c.max() <= 4, `max in flight ${c.max()}`);
  assert.ok(c.max() >= 2, 'puts do run in parallel');
});

test('progress reaches the image size', async () => {
  const api = new MemoryEbsApi();
  const p = path();
  const size = 5 * BLOCK_SIZE + 77;
  await writeImage(p, size, new Map([[2, filled(2)]]));
  let last = { bytesDone: 0, totalBytes: 0, blocksDone: 0, totalBlocks: 0, blocksTransferred: 0 };
  await importImage({ api, imagePath: p, onProgress: (x) => (last = x), ...fast });
  assert.equal(last.bytesDone, size);
  assert.equal(last.totalBytes, size);
  assert.equal(last.blocksDone, 6);
  assert.equal(last.blocksTransferred, 1);
});

test('an abort signal stops the import', async () => {
  const mem = new MemoryEbsApi();
  mem.latencyMs = 20;
  const blocks = new Map<number, Buffer>();
  for (let i = 0; i < 30; i++) blocks.set(i, filled(i + 1));
  const p = path();
  await writeImage(p, 30 * BLOCK_SIZE, blocks);
  const ctrl = new AbortController();
  // Aborted once two blocks are done: whatever the machine's speed, mid-way.
  const onProgress = (pr: { blocksDone: number }) => {
    if (pr.blocksDone >= 2 && !ctrl.signal.aborted) ctrl.abort(new UserError('interrupted (SIGINT)', 130));
  };
  await assert.rejects(importImage({ api: mem, imagePath: p, concurrency: 2, signal: ctrl.signal, onProgress, ...fast }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^interrupted \(SIGINT\); snapshot snap-\w+ was left pending/);
    assert.equal(e.exitCode, 130);
    return true;
  });
  assert.ok(mem.counts('putSnapshotBlock') < 30);
});
