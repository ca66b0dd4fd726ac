/** Unit tests of block and page tokens (src/server/tokens.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TokenCodec, PAGE_TOKEN_TTL_MS } from '../../../src/server/tokens.js';

const SHA = 'ab'.repeat(32);
const OTHER_SHA = 'cd'.repeat(32);

function codec(now: { t: number }, ttlMs = 10_000, secret = randomBytes(32)) {
  return new TokenCodec(secret, ttlMs, () => now.t);
}

test('a block token verifies for its snapshot, index and content only', () => {
  const now = { t: 1_000_000 };
  const c = codec(now);
  const tok = c.blockToken('snap-1', 7, SHA, c.blockExpiry());
  assert.match(tok, /^[A-Za-z0-9_-]+$/);
  assert.equal(c.checkBlockToken(tok, 'snap-1', 7, SHA), 'ok');
  assert.equal(c.checkBlockToken(tok, 'snap-2', 7, SHA), 'invalid');
  assert.equal(c.checkBlockToken(tok, 'snap-1', 8, SHA), 'invalid');
  assert.equal(c.checkBlockToken(tok, 'snap-1', 7, OTHER_SHA), 'invalid');
});

test('a block token expires at its expiry time', () => {
  const now = { t: 5_000 };
  const c = codec(now, 1000);
  const tok = c.blockToken('snap-1', 0, SHA, c.blockExpiry());
  now.t = 5_999;
  assert.equal(c.checkBlockToken(tok, 'snap-1', 0, SHA), 'ok');
  now.t = 6_000;
  assert.equal(c.checkBlockToken(tok, 'snap-1', 0, SHA), 'expired');
});

test('tampered, truncated, foreign-key and garbage block tokens are invalid', () => {
  const now = { t: 1 };
  const c = codec(now);
  const tok = c.blockToken('snap-1', 3, SHA, c.blockExpiry());
  const raw = Buffer.from(tok, 'base64url');
  for (let i = 0; i < raw.length; i++) {
    const t = Buffer.from(raw);
    t[i] = t[i]! ^ 0x01;
    assert.equal(c.checkBlockToken(t.toString('base64url'), 'snap-1', 3, SHA), 'invalid', `flip at byte ${i}`);
  }
  // Extending the expiry without the key does not work.
  const later = Buffer.from(raw);
  later.writeUIntBE(raw.readUIntBE(1, 6) + 1_000_000, 1, 6);
  assert.equal(c.checkBlockToken(later.toString('base64url'), 'snap-1', 3, SHA), 'invalid');
  assert.equal(c.checkBlockToken(tok.slice(0, -2), 'snap-1', 3, SHA), 'invalid');
  assert.equal(c.checkBlockToken('', 'snap-1', 3, SHA), 'invalid');
  assert.equal(c.checkBlockToken('not a token!', 'snap-1', 3, SHA), 'invalid');
  assert.equal(c.checkBlockToken('x'.repeat(500), 'snap-1', 3, SHA), 'invalid');
  const other = codec(now);
  assert.equal(other.checkBlockToken(tok, 'snap-1', 3, SHA), 'invalid');
});

test('two listings give different tokens for the same block; both work', () => {
  const now = { t: 1 };
  const c = codec(now);
  const a = c.blockToken('snap-1', 3, SHA, c.blockExpiry());
  const b = c.blockToken('snap-1', 3, SHA, c.blockExpiry());
  assert.notEqual(a, b);
  assert.equal(c.checkBlockToken(a, 'snap-1', 3, SHA), 'ok');
  assert.equal(c.checkBlockToken(b, 'snap-1', 3, SHA), 'ok');
});

test('page tokens round-trip and are bound to their listing', () => {
  const now = { t: 100 };
  const c = codec(now);
  const tok = c.pageToken({ kind: 'l', snapshotId: 'snap-1', nextIndex: 12345 });
  assert.deepEqual(c.readPageToken(tok, { kind: 'l', snapshotId: 'snap-1' }), {
    cursor: { kind: 'l', snapshotId: 'snap-1', nextIndex: 12345 },
  });
  assert.deepEqual(c.readPageToken(tok, { kind: 'l', snapshotId: 'snap-2' }), { error: 'invalid' });
  assert.deepEqual(c.readPageToken(tok, { kind: 'c', snapshotId: 'snap-1' }), { error: 'invalid' });
  const ch = c.pageToken({ kind: 'c', snapshotId: 'snap-2', firstSnapshotId: 'snap-1', nextIndex: 5 });
  assert.equal('cursor' in c.readPageToken(ch, { kind: 'c', snapshotId: 'snap-2', firstSnapshotId: 'snap-1' }), true);
  assert.deepEqual(c.readPageToken(ch, { kind: 'c', snapshotId: 'snap-2', firstSnapshotId: 'snap-3' }), { error: 'invalid' });
  assert.deepEqual(c.readPageToken(ch, { kind: 'c', snapshotId: 'snap-2' }), { error: 'invalid' });
});

test('page tokens expire after 60 minutes and reject tampering', () => {
  const now = { t: 0 };
  const c = codec(now);
  const tok = c.pageToken({ kind: 'l', snapshotId: 'snap-1', nextIndex: 1 });
  now.t = PAGE_TOKEN_TTL_MS - 1;
  assert.equal('cursor' in c.readPageToken(tok, { kind: 'l', snapshotId: 'snap-1' }), true);
  now.t = PAGE_TOKEN_TTL_MS;
  assert.deepEqual(c.readPageToken(tok, { kind: 'l', snapshotId: 'snap-1' }), { error: 'expired' });
  now.t = 0;
  const raw = Buffer.from(tok, 'base64url');
  const forged = Buffer.from(raw.toString('latin1').replace('"n":1', '"n":9'), 'latin1');
  assert.deepEqual(c.readPageToken(forged.toString('base64url'), { kind: 'l', snapshotId: 'snap-1' }), { error: 'invalid' });
  assert.deepEqual(c.readPageToken('@@', { kind: 'l', snapshotId: 'snap-1' }), { error: 'invalid' });
  assert.deepEqual(c.readPageToken('', { kind: 'l', snapshotId: 'snap-1' }), { error: 'invalid' });
});
