/**
 * exportSnapshot against MemoryEbsApi: content, holes (unlisted and all-zero blocks), paging,
 * verification and token refresh, refusing to overwrite, keeping FILE intact on failure.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { EbsError } from '../../../src/ebs/errors.js';
import { BLOCK_SIZE, GIB } from '../../../src/ebs/constants.js';
import { exportSnapshot } from '../../../src/transfer/exporter.js';
import { UserError } from '../../../src/errors/user-error.js';
import { FAST, countingConcurrency, expireAfterFirstList, filled, noSleep, smallPages, tempDir } from './helpers.js';

const tmp = await tempDir();
after(() => tmp.cleanup());
let n = 0;
const out = () => join(tmp.dir, `out${n++}.img`);
const fast = { readPolicy: FAST, sleep: noSleep };

async function readBlock(path: string, index: number): Promise<Buffer> {
  const all = await readFile(path);
  return all.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE);
}

test('writes every listed block at its offset into a sparse file of VolumeSize GiB', async () => {
  const api = new MemoryEbsApi();
  const blocks = new Map([[0, filled(1)], [3, Buffer.alloc(BLOCK_SIZE)], [7, filled(7)], [2047, filled(9)]]);
  const id = api.createCompletedSnapshot(blocks, 1);
  const p = out();
  const r = await exportSnapshot({ api, snapshotId: id, filePath: p, ...fast });
  assert.equal(r.volumeSizeGiB, 1);
  assert.equal(r.blocksListed, 4);
  assert.equal(r.zeroBlocks, 1);
  assert.equal(r.blocksWritten, 3);
  const st = await stat(p);
  assert.equal(st.size, GIB);
  assert.ok(st.blocks * 512 <= 4 * BLOCK_SIZE, `allocated ${st.blocks * 512} bytes: holes kept (zero block too)`);
  const data = await readFile(p);
  const expected = Buffer.alloc(GIB);
  for (const [i, b] of blocks) b.copy(expected, i * BLOCK_SIZE);
  assert.ok(data.equals(expected));
  assert.deepEqual((await readdir(tmp.dir)).filter((f) => f.includes('partial')), [], 'no partial file left');
});

test('keeps at most `concurrency` reads in flight', async () => {
  const mem = new MemoryEbsApi();
  mem.latencyMs = 2;
  const blocks = new Map<number, Buffer>();
  for (let i = 0; i < 250; i++) blocks.set(i * 3, filled(i % 200 + 1));
  const id = mem.createCompletedSnapshot(blocks, 1);
  const c = countingConcurrency(mem, 'getSnapshotBlock');
  const p = out();
  const r = await exportSnapshot({ api: c.api, snapshotId: id, filePath: p, concurrency: 8, ...fast });
  assert.equal(r.blocksListed, 250);
  assert.ok(c.max() <= 8 && c.max() >= 2, `max in flight ${c.max()}`);
  const data = await readFile(p);
  for (const [i, b] of blocks) assert.ok(data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE).equals(b), `block ${i}`);
});

test('paged listing (100 per page) is followed to the end', async () => {
  const mem = new MemoryEbsApi();
  const blocks = new Map<number, Buffer>();
  const same = filled(3);
  for (let i = 0; i < 230; i++) blocks.set(i * 2, same);
  const id = mem.createCompletedSnapshot(blocks, 1);
  const p = out();
  const r = await exportSnapshot({ api: smallPages(mem, 100), snapshotId: id, filePath: p, ...fast });
  assert.equal(r.blocksListed, 230);
  assert.equal(mem.counts('listSnapshotBlocks'), 3);
  assert.ok((await readBlock(p, 458)).equals(same));
});

test('corrupt bodies are refetched and expired tokens re-listed; output still exact', async () => {
  const mem = new MemoryEbsApi();
  const blocks = new Map([[1, filled(1)], [2, filled(2)], [5, filled(5)]]);
  const id = mem.createCompletedSnapshot(blocks, 1);
  mem.corruptNext('getSnapshotBlock', 3);
  const p = out();
  const r = await exportSnapshot({ api: expireAfterFirstList(mem), snapshotId: id, filePath: p, concurrency: 2, ...fast });
  assert.ok(r.retries >= 3);
  assert.ok(mem.counts('listSnapshotBlocks') >= 2);
  for (const [i, b] of blocks) assert.ok((await readBlock(p, i)).equals(b));
});

test('an existing file is refused without --force and replaced with it', async () => {
  const api = new MemoryEbsApi();
  const id = api.createCompletedSnapshot(new Map([[0, filled(4)]]), 1);
  const p = out();
  await writeFile(p, 'precious');
  await assert.rejects(exportSnapshot({ api, snapshotId: id, filePath: p, ...fast }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.equal(e.message, `${p} already exists (use --force to overwrite it)`);
    return true;
  });
  assert.equal(await readFile(p, 'utf8'), 'precious');
  assert.equal(api.counts('listSnapshotBlocks'), 0);
  await exportSnapshot({ api, snapshotId: id, filePath: p, force: true, ...fast });
  assert.equal((await stat(p)).size, GIB);
  assert.ok((await readBlock(p, 0)).equals(filled(4)));
});

test('a failed export leaves FILE untouched and no partial file', async () => {
  const api = new MemoryEbsApi();
  const id = api.createCompletedSnapshot(new Map([[0, filled(4)], [1, filled(5)]]), 1);
  const p = out();
  await writeFile(p, 'precious');
  api.injectFailure('getSnapshotBlock', new EbsError('AccessDeniedException', 'KMS key access denied', { status: 403, reason: 'DEPENDENCY_ACCESS_DENIED' }), 1);
  await assert.rejects(exportSnapshot({ api, snapshotId: id, filePath: p, force: true, concurrency: 1, ...fast }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^export failed \(download\): access denied to the KMS key of snapshot snap-\w+/);
    return true;
  });
  assert.equal(await readFile(p, 'utf8'), 'precious');
  assert.deepEqual((await readdir(tmp.dir)).filter((f) => f.includes('partial')), []);
});

test('not found, not completed, bad target directory: one-line errors, nothing created', async () => {
  const api = new MemoryEbsApi();
  const p = out();
  await assert.rejects(exportSnapshot({ api, snapshotId: 'snap-0000000000000beef', filePath: p, ...fast }),
    /^UserError: snapshot snap-0000000000000beef not found \(check the id and the region\)$/);
  await assert.rejects(stat(p));
  const pending = await api.startSnapshot({ volumeSizeGiB: 1 });
  await assert.rejects(exportSnapshot({ api, snapshotId: pending.snapshotId, filePath: p, ...fast }),
    (e: unknown) => e instanceof UserError && /is not completed yet \(status pending\)/.test(e.message));
  const id = api.createCompletedSnapshot(new Map([[0, filled(1)]]), 1);
  await assert.rejects(exportSnapshot({ api, snapshotId: id, filePath: join(tmp.dir, 'no-such-dir', 'x.img'), ...fast }), /directory .* does not exist/);
  await assert.rejects(exportSnapshot({ api, snapshotId: id, filePath: tmp.dir, ...fast }), /is a directory/);
});

test('progress covers the whole volume', async () => {
  const api = new MemoryEbsApi();
  const id = api.createCompletedSnapshot(new Map([[10, filled(1)], [20, filled(2)]]), 1);
  let last = { bytesDone: 0, totalBytes: 0 };
  await exportSnapshot({ api, snapshotId: id, filePath: out(), onProgress: (x) => (last = x), ...fast });
  assert.equal(last.totalBytes, GIB);
  assert.equal(last.bytesDone, GIB);
});
