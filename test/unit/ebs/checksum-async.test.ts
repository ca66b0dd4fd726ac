import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sha256, sha256Async, sha256Base64, sha256Base64Async } from '../../../src/ebs/checksum.js';

import { patternBlock } from '../writeback/fixtures.js';

test('sha256Base64Async hashes the bytes as they were at the call (the buffer may be reused at once)', async () => {
  const b = patternBlock(3);
  const want = sha256Base64(b);
  const p = sha256Base64Async(b);
  b.fill(0); // reused right away, as the committer's and the flush's buffers are
  assert.equal(await p, want);
  assert.equal(await sha256Base64Async(b), sha256Base64(b));
});

test('sha256Async equals the synchronous hash, also for views into larger buffers', async () => {
  const big = Buffer.alloc(3 * 1024, 7);
  big.write('ebsmount', 1000);
  const view = big.subarray(512, 2560);
  assert.ok((await sha256Async(view)).equals(sha256(view)));
  assert.notEqual((await sha256Async(view)).toString('hex'), (await sha256Async(big)).toString('hex'));
});
