/**
 * BlockPool (reused 512 KiB body buffers) and the hash workers (SHA-256 off the event loop):
 * what the pool keeps and hands out; sha256Owned moves a buffer to a worker and back intact;
 * hashing lets the event loop turn meanwhile; a CacheStore gives evicted blocks back to its pool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockPool } from '../../../src/ebs/block-pool.js';
import { sha256, sha256Async, sha256Owned } from '../../../src/ebs/checksum.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { CacheStore } from '../../../src/store/cache-store.js';
import { Stats } from '../../../src/util/stats.js';

test('the pool hands out whole block buffers, keeps only whole unshared ones, at most maxIdle', () => {
  const pool = new BlockPool(2);
  const a = pool.take();
  assert.equal(a.length, BLOCK_SIZE);
  assert.equal(a.byteOffset, 0);
  assert.equal(a.buffer.byteLength, BLOCK_SIZE);
  pool.give(a);
  pool.give(a); // twice: kept once
  assert.equal(pool.idleCount, 1);
  assert.equal(pool.take(), a, 'reused');
  assert.equal(pool.reused, 1);
  pool.give(Buffer.alloc(BLOCK_SIZE * 2).subarray(0, BLOCK_SIZE)); // a view: not ours to keep
  pool.give(Buffer.alloc(100));
  pool.give(Buffer.from(new SharedArrayBuffer(BLOCK_SIZE)));
  assert.equal(pool.idleCount, 0);
  const kept = Buffer.allocUnsafeSlow(BLOCK_SIZE);
  pool.keepOut(kept); // a disk cache may still be writing it
  pool.give(kept);
  assert.equal(pool.idleCount, 0);
  for (let i = 0; i < 3; i++) pool.give(Buffer.allocUnsafeSlow(BLOCK_SIZE));
  assert.equal(pool.idleCount, 2);
});

test('sha256Owned: the buffer goes to a worker and comes back with its bytes and digest', async () => {
  // Until a worker thread is online, hashes run here: wait for one.
  for (let i = 0; i < 200; i++) {
    const probe = Buffer.allocUnsafeSlow(BLOCK_SIZE);
    const p = sha256Owned(probe);
    const moved = probe.length === 0;
    await p;
    if (moved) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  const buf = Buffer.allocUnsafeSlow(BLOCK_SIZE).fill(0x33);
  buf.write('owned', 4096);
  const expected = sha256(buf);
  const copy = Buffer.from(buf);
  const p = sha256Owned(buf);
  assert.equal(buf.length, 0, 'moved to the worker (detached here), not copied');
  const r = await p;
  assert.ok(r.digest.equals(expected));
  assert.ok(r.data.equals(copy));
  assert.equal(r.data.length, BLOCK_SIZE);
  // A view into a larger buffer is hashed from a copy and returned as is.
  const big = Buffer.alloc(3 * 1024, 5);
  const view = big.subarray(100, 2100);
  const v = await sha256Owned(view);
  assert.equal(v.data, view);
  assert.ok(v.digest.equals(sha256(view)));
});

test('hashing runs on a worker thread: the event loop keeps turning while 64 MiB hash', async () => {
  const big = Buffer.alloc(64 * 1024 * 1024, 7);
  let turns = 0;
  let done = false;
  const tick = (): void => {
    if (done) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  const digest = await sha256Async(big);
  done = true;
  assert.ok(digest.equals(sha256(big)));
  // Hashing on the event loop allows at most one turn.
  assert.ok(turns >= 3, `event loop turns while hashing: ${turns}`);
});

test('a CacheStore gives the blocks it evicts back to its pool, and the next fetch can reuse them', async () => {
  const pool = new BlockPool();
  const source = {
    readBlock: async (index: number) => {
      const b = pool.take();
      b.fill(index & 0xff);
      return b;
    },
  };
  const cache = new CacheStore({ source, cacheSizeBytes: 8 * BLOCK_SIZE, stats: new Stats(), inFlightReserveBlocks: 0, pool });
  const first = await cache.readBlock(0);
  for (let i = 1; i <= 8; i++) await cache.readBlock(i);
  assert.equal(cache.cachedBlocks, 8);
  assert.equal(pool.idleCount, 1, 'block 0, evicted, went back to the pool');
  const again = await cache.readBlock(9);
  assert.equal(again, first, "block 9 landed in block 0's buffer");
  assert.ok(again!.equals(Buffer.alloc(BLOCK_SIZE, 9)));
  assert.equal(pool.reused, 1);
  cache.close();
  assert.equal(pool.idleCount, 9, 'block 1 (evicted by block 9) and, at close, the 8 cached blocks');
});
