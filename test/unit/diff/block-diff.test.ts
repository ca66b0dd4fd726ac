/**
 * Block-level diff, pure parts and the runner over the in-memory API double: the compact
 * changed-block set (ranges, overlap and count queries), the per-partition counts, the text and
 * JSON reports, paging through short pages within the list rate, and the unrelated-lineage error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangedBlocks, listChangedBlocks, sideOf } from '../../../src/diff/changed-blocks.js';
import { partitionCounts } from '../../../src/diff/partition-counts.js';
import { formatBlockDiff, jsonChunks, type BlockDiffReport } from '../../../src/diff/block-report.js';
import { runBlockDiff, type TableReader } from '../../../src/diff/run-block-diff.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { EbsError } from '../../../src/ebs/errors.js';
import { UserError } from '../../../src/errors/user-error.js';

function block(seed: number): Buffer {
  return Buffer.alloc(BLOCK_SIZE, seed);
}

function setOf(entries: [number, 'both' | 'a' | 'b'][]): ChangedBlocks {
  const c = new ChangedBlocks();
  for (const [i, s] of entries) c.add(i, s);
  return c;
}

test('ChangedBlocks: ranges merge consecutive indexes; overlaps and countIn by binary search; grows past its first buffer', () => {
  const c = setOf([[0, 'b'], [1, 'both'], [2, 'both'], [7, 'a'], [9, 'b'], [10, 'b']]);
  assert.deepEqual(c.ranges(), [{ first: 0, last: 2 }, { first: 7, last: 7 }, { first: 9, last: 10 }]);
  assert.equal(c.size, 6);
  assert.equal(c.bytes, 6 * BLOCK_SIZE);
  assert.deepEqual(c.sideCounts, { both: 2, a: 1, b: 3 });
  assert.equal(c.overlaps(3, 6), false);
  assert.equal(c.overlaps(3, 7), true);
  assert.equal(c.overlaps(11, 100), false);
  assert.equal(c.countIn(1, 9), 4);
  assert.equal(c.countIn(5, 4), 0);
  assert.equal(c.has(7), true);
  assert.equal(c.has(8), false);
  assert.throws(() => c.add(10, 'b'), RangeError);

  const big = new ChangedBlocks();
  for (let i = 0; i < 5000; i++) big.add(i * 2, 'b');
  assert.equal(big.size, 5000);
  assert.equal(big.ranges().length, 5000);
  assert.equal(big.countIn(0, 9999), 5000);
  assert.equal(big.has(9998), true);
});

test('sideOf: which snapshot holds data at a changed index', () => {
  assert.equal(sideOf({ firstToken: 'x', secondToken: 'y' }), 'both');
  assert.equal(sideOf({ secondToken: 'y' }), 'b');
  assert.equal(sideOf({ firstToken: 'x' }), 'a');
});

test('partitionCounts: blocks per partition, a straddling block counts in both, the rest is outside', () => {
  const MiB = 1024 * 1024;
  // p1: bytes 1 MiB..(1 MiB + 1.25 MiB) → blocks 2..4 (block 4 half p1, half p2); p2 from 2.25 MiB, 1 MiB → blocks 4..6.
  const parts = [
    { number: 2, startBytes: 2.25 * MiB, sizeBytes: MiB, typeName: 'Linux filesystem' },
    { number: 1, startBytes: MiB, sizeBytes: 1.25 * MiB },
  ];
  const c = setOf([[0, 'both'], [3, 'b'], [4, 'b'], [6, 'b'], [9, 'a']]);
  const r = partitionCounts(c, parts);
  assert.deepEqual(r.partitions.map((p) => [p.number, p.firstBlock, p.lastBlock, p.changedBlocks]), [[1, 2, 4, 2], [2, 4, 6, 2]]);
  assert.equal(r.outside, 2);
});

function report(changed: ChangedBlocks): BlockDiffReport {
  return {
    snapA: 'snap-0000000000000000a',
    snapB: 'snap-0000000000000000b',
    volumeSizeGiB: 1,
    changed,
    partitionTable: {
      scheme: 'gpt',
      readFrom: 'snap-0000000000000000b',
      counts: partitionCounts(changed, [{ number: 1, startBytes: 1024 * 1024, sizeBytes: 100 * 1024 * 1024, typeName: 'Linux filesystem' }]),
    },
    notes: ['a note'],
    requests: { listChanged: 3, listBlocks: 1, get: 1 },
  };
}

test('formatBlockDiff: summary, sides, merged ranges with byte offsets, partitions, requests and cost', () => {
  const text = formatBlockDiff(report(setOf([[0, 'both'], [2, 'b'], [3, 'b'], [4, 'a']])));
  assert.match(text, /^snap-0000000000000000a → snap-0000000000000000b: 4 changed blocks \(2\.00 MiB\) of 2048 in the 1 GiB volume \(0\.20 %\)$/m);
  assert.match(text, /data on both sides: 1; only in snap-0000000000000000a: 1; only in snap-0000000000000000b: 2/);
  assert.match(text, /ranges \(2, consecutive blocks merged/);
  assert.match(text, /^ {2}0 .* 1 block .* bytes 0–524287$/m);
  assert.match(text, /^ {2}2–4 .* 3 blocks .*1\.50 MiB {2}bytes 1048576–2621439$/m);
  assert.match(text, /^ {2}p1 +Linux filesystem .* 3 changed blocks$/m);
  assert.match(text, /outside any partition: 1/);
  assert.match(text, /note: a note/);
  assert.match(text, /requests: 3 ListChangedBlocks, 1 ListSnapshotBlocks, 1 GetSnapshotBlock \(\$0\.000005 at list prices\)/);
});

test('jsonChunks: one valid JSON document with every changed index and its side, in pieces', () => {
  const c = new ChangedBlocks();
  for (let i = 0; i < 3000; i++) c.add(i * 3, i % 3 === 0 ? 'both' : i % 3 === 1 ? 'a' : 'b');
  const chunks = [...jsonChunks(report(c))];
  assert.ok(chunks.length > 2, 'written in several pieces');
  const doc = JSON.parse(chunks.join('')) as Record<string, any>;
  assert.equal(doc.changedBlocks, 3000);
  assert.equal(doc.blocks.length, 3000);
  assert.deepEqual(doc.blocks[1], { index: 3, side: 'a' });
  assert.equal(doc.ranges.length, 3000);
  assert.equal(doc.partitionTable.partitions[0].number, 1);
  assert.deepEqual(doc.requests, { listChanged: 3, listBlocks: 1, get: 1 });
  const empty = JSON.parse([...jsonChunks(report(new ChangedBlocks()))].join('')) as Record<string, any>;
  assert.deepEqual(empty.blocks, []);
});

test('listChangedBlocks: follows every page (short pages too), records sides, counts requests, paced by the list limiter', async () => {
  const api = new MemoryEbsApi();
  const parent = new Map<number, Buffer>();
  for (let i = 0; i < 400; i++) parent.set(i, block(1));
  const a = api.createCompletedSnapshot(parent, 1);
  const own = new Map<number, Buffer>();
  for (let i = 100; i < 350; i++) own.set(i, block(2));
  for (let i = 1000; i < 1010; i++) own.set(i, block(3));
  const b = api.createCompletedSnapshot(own, 1, { parentSnapshotId: a });
  const r = await listChangedBlocks(api, a, b, { maxResults: 100, listRate: 1000 });
  assert.equal(r.blocks.size, 260);
  assert.deepEqual(r.blocks.sideCounts, { both: 250, a: 0, b: 10 });
  assert.deepEqual(r.blocks.ranges(), [{ first: 100, last: 349 }, { first: 1000, last: 1009 }]);
  assert.equal(r.listRequests, 3);
  assert.equal(r.listRequests, api.counts('listChangedBlocks'));
  assert.equal(r.volumeSizeGiB, 1);
  // Reversed order: B's own blocks beyond A's are "only in the first".
  const rev = await listChangedBlocks(api, b, a, { maxResults: 1000 });
  assert.deepEqual(rev.blocks.sideCounts, { both: 250, a: 10, b: 0 });
});

test('runBlockDiff: unrelated snapshots are one clear UserError naming both and why', async () => {
  const api = new MemoryEbsApi();
  const a = api.createCompletedSnapshot(new Map([[0, block(1)]]), 1);
  const b = api.createCompletedSnapshot(new Map([[0, block(2)]]), 1);
  await assert.rejects(runBlockDiff({ api, snapA: a, snapB: b }), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, new RegExp(`${a} and ${b} are not of one lineage`));
    assert.match(err.message, /ListChangedBlocks compares only snapshots of the same volume/);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
});

test('runBlockDiff: a missing snapshot is named; the partition table is read from B (and A when block 0 changed)', async () => {
  const api = new MemoryEbsApi();
  const a = api.createCompletedSnapshot(new Map([[0, block(1)], [5, block(1)]]), 1);
  const b = api.createCompletedSnapshot(new Map([[5, block(2)], [9, block(2)]]), 1, { parentSnapshotId: a });
  await assert.rejects(runBlockDiff({ api, snapA: a, snapB: 'snap-0123456789abcdef0', firstPagePolicy: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1, budgetMs: 10 } }), /not found/);

  const reads: string[] = [];
  const readTable: TableReader = async (id) => {
    reads.push(id);
    return { table: { scheme: 'gpt', partitions: [{ number: 1, startBytes: 2 * BLOCK_SIZE, sizeBytes: 6 * BLOCK_SIZE }], notes: [] }, getRequests: 1, listRequests: 1 };
  };
  const r = await runBlockDiff({ api, snapA: a, snapB: b, readTable });
  assert.deepEqual(reads, [b], 'block 0 unchanged: only B read');
  assert.equal(r.changed.size, 2);
  assert.equal(r.partitionTable?.counts?.partitions[0]?.changedBlocks, 1);
  assert.equal(r.partitionTable?.counts?.outside, 1);
  assert.deepEqual(r.requests, { listChanged: 1, listBlocks: 1, get: 1 });

  const c = api.createCompletedSnapshot(new Map([[0, block(3)]]), 1, { parentSnapshotId: b });
  let n = 0;
  const changingTable: TableReader = async () => ({
    table: { scheme: 'gpt', partitions: [{ number: 1, startBytes: BLOCK_SIZE * (++n), sizeBytes: BLOCK_SIZE }], notes: [] },
    getRequests: 1,
    listRequests: 1,
  });
  const r2 = await runBlockDiff({ api, snapA: b, snapB: c, readTable: changingTable });
  assert.equal(r2.requests.get, 2);
  assert.ok(r2.notes.some((x) => /partition table changed/.test(x)), r2.notes.join('; '));

  const failing: TableReader = async () => {
    throw new EbsError('InternalServerException', 'boom', { status: 500 });
  };
  const r3 = await runBlockDiff({ api, snapA: a, snapB: b, readTable: failing });
  assert.equal(r3.partitionTable, undefined);
  assert.ok(r3.notes.some((x) => /partition table not read/.test(x)));
});
