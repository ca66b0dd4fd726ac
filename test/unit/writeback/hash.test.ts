import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sha256Base64 } from '../../../src/ebs/checksum.js';
import { sha256Base64Async } from '../../../src/writeback/hash.js';
import { patternBlock } from './fixtures.js';

test('sha256Base64Async hashes the bytes as they were at the call (the buffer may be reused at once)', async () => {
  const b = patternBlock(3);
  const want = sha256Base64(b);
  const p = sha256Base64Async(b);
  b.fill(0); // reused right away, as the committer's and the flush's buffers are
  assert.equal(await p, want);
  assert.equal(await sha256Base64Async(b), sha256Base64(b));
});
