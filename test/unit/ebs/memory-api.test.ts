import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { linearChecksum, sha256Base64 } from '../../../src/ebs/checksum.js';
import { EbsError } from '../../../src/ebs/errors.js';

const block = () => randomBytes(BLOCK_SIZE);

test('the double pages like the service and serves lineage', async () => {
  const api = new MemoryEbsApi();
  const parentBlocks = new Map(Array.from({ length: 250 }, (_, i) => [i * 2, block()] as [number, Buffer]));
  const parent = api.createCompletedSnapshot(parentBlocks, 1);
  const childOwn = new Map([[4, block()], [1, block()]]);
  const child = api.createCompletedSnapshot(childOwn, 1, { parentSnapshotId: parent });
  const seen: number[] = [];
  let nextToken: string | undefined;
  do {
    const page = await api.listSnapshotBlocks(child, { maxResults: 100, nextToken });
    seen.push(...page.blocks.map((b) => b.index));
    nextToken = page.nextToken;
  } while (nextToken);
  assert.equal(seen.length, 251);
  assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
  const page = await api.listSnapshotBlocks(child, { startingBlockIndex: 4, maxResults: 100 });
  const got = await api.getSnapshotBlock(child, 4, page.blocks[0]!.token);
  assert.ok(got.data.equals(childOwn.get(4)!));
  const changed = await api.listChangedBlocks(parent, child, { maxResults: 100 });
  assert.deepEqual(changed.blocks.map((b) => [b.index, b.firstToken !== undefined]), [[1, false], [4, true]]);
  const other = api.createCompletedSnapshot(new Map(), 1);
  await assert.rejects(api.listChangedBlocks(other, child), (e: EbsError) => e.reason === 'UNRELATED_SNAPSHOTS');
  await assert.rejects(api.listSnapshotBlocks(child, { maxResults: 99 }), /MaxResults/);
});

test('put/complete check lengths, checksums, counts and the LINEAR checksum', async () => {
  const api = new MemoryEbsApi();
  const s = await api.startSnapshot({ volumeSizeGiB: 1, clientToken: 't1' });
  assert.equal((await api.startSnapshot({ volumeSizeGiB: 1, clientToken: 't1' })).snapshotId, s.snapshotId);
  await assert.rejects(api.startSnapshot({ volumeSizeGiB: 2, clientToken: 't1' }), (e: EbsError) => e.type === 'ConflictException');
  const b = block();
  await assert.rejects(api.putSnapshotBlock(s.snapshotId, 0, b, sha256Base64(block())), /checksum/);
  await assert.rejects(api.putSnapshotBlock(s.snapshotId, 0, b.subarray(1), sha256Base64(b.subarray(1))), /DataLength/);
  await assert.rejects(api.putSnapshotBlock(s.snapshotId, 2048, b, sha256Base64(b)), /outside/);
  await api.putSnapshotBlock(s.snapshotId, 3, b, sha256Base64(b));
  await assert.rejects(api.listSnapshotBlocks(s.snapshotId), /not completed/);
  const ok = await api.completeSnapshot(s.snapshotId, 1, { linearChecksum: linearChecksum([[3, sha256Base64(b)]]) });
  assert.equal(ok.status, 'completed');
  const bad = await api.startSnapshot({ volumeSizeGiB: 1 });
  await api.putSnapshotBlock(bad.snapshotId, 0, b, sha256Base64(b));
  assert.equal((await api.completeSnapshot(bad.snapshotId, 2)).status, 'error');
});

test('expired tokens fail with INVALID_BLOCK_TOKEN; injected faults and corruption apply once each', async () => {
  const api = new MemoryEbsApi();
  const b = block();
  const id = api.createCompletedSnapshot(new Map([[0, b]]), 1);
  const token = (await api.listSnapshotBlocks(id)).blocks[0]!.token;
  api.corruptNext('getSnapshotBlock', 1);
  const corrupt = await api.getSnapshotBlock(id, 0, token);
  assert.equal(corrupt.checksum, sha256Base64(b));
  assert.notEqual(sha256Base64(corrupt.data), corrupt.checksum);
  assert.ok((await api.getSnapshotBlock(id, 0, token)).data.equals(b));
  api.injectFailure('getSnapshotBlock', new EbsError('InternalServerException', 'down'), 1);
  await assert.rejects(api.getSnapshotBlock(id, 0, token), /down/);
  api.expireTokens();
  await assert.rejects(api.getSnapshotBlock(id, 0, token), (e: EbsError) => e.reason === 'INVALID_BLOCK_TOKEN');
  assert.equal(api.counts('getSnapshotBlock'), 4);
});
