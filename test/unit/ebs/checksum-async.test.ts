import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HASH_JOBS, runningHashJobs, sha256, sha256Async, sha256Base64, sha256Base64Async } from '../../../src/ebs/checksum.js';
import { patternBlock } from '../writeback/fixtures.js';

test('sha256Base64Async equals the synchronous hash', async () => {
  const b = patternBlock(3);
  assert.equal(await sha256Base64Async(b), sha256Base64(b));
});

test('sha256Async equals the synchronous hash, also for views into larger buffers', async () => {
  const big = Buffer.alloc(3 * 1024, 7);
  big.write('ebsmount', 1000);
  const view = big.subarray(512, 2560);
  assert.ok((await sha256Async(view)).equals(sha256(view)));
  assert.notEqual((await sha256Async(view)).toString('hex'), (await sha256Async(big)).toString('hex'));
});

test('many concurrent hashes: each right, at most HASH_JOBS running at once, none left running', async () => {
  const blocks = Array.from({ length: 5 * HASH_JOBS + 3 }, (_, i) => patternBlock(i + 1));
  let peak = 0;
  const watch = setInterval(() => (peak = Math.max(peak, runningHashJobs())), 0);
  const results = await Promise.all(blocks.map(async (b) => {
    const p = sha256Base64Async(b);
    peak = Math.max(peak, runningHashJobs());
    return p;
  }));
  clearInterval(watch);
  results.forEach((r, i) => assert.equal(r, sha256Base64(blocks[i]!)));
  assert.equal(peak, HASH_JOBS, 'the limit is reached and never passed');
  assert.equal(runningHashJobs(), 0);
});
