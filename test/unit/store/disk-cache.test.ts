import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { DiskCache } from '../../../src/store/disk-cache.js';
import { BlobState, DiskCacheIndex } from '../../../src/store/disk-cache-index.js';
import { Stats } from '../../../src/util/stats.js';

function block(): { data: Buffer; hash: Buffer } {
  const data = randomBytes(BLOCK_SIZE);
  return { data, hash: createHash('sha256').update(data).digest() };
}

function blobFiles(dir: string): string[] {
  const out: string[] = [];
  for (const sub of readdirSync(join(dir, 'blobs'))) for (const f of readdirSync(join(dir, 'blobs', sub))) out.push(join(dir, 'blobs', sub, f));
  return out;
}

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), 'ebsmount-dc-'));
    try {
      await fn(join(root, 'cache'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

describe('DiskCache', () => {
  test('a stored block reads back verified, after reopening too; modes 0700/0600', withDir(async (dir) => {
    const b = block();
    let cache = DiskCache.open({ dir, sizeBytes: 16 * BLOCK_SIZE });
    const snap = cache.snapshotKey('snap-0123456789abcdef0', 1);
    assert.equal(await cache.get(snap, 7), null);
    assert.equal(await cache.put(snap, 7, b.data, b.hash), 'stored');
    cache.close();
    cache = DiskCache.open({ dir, sizeBytes: 16 * BLOCK_SIZE });
    try {
      const got = await cache.get(cache.snapshotKey('snap-0123456789abcdef0', 1), 7, 'background');
      assert.ok(got);
      assert.ok(got.data.equals(b.data));
      assert.ok(got.sha256.equals(b.hash));
      assert.equal(cache.storedBytes, BLOCK_SIZE);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      for (const sub of ['blobs', 'tmp']) assert.equal(statSync(join(dir, sub)).mode & 0o777, 0o700);
      for (const f of [...blobFiles(dir), join(dir, 'index.sqlite'), join(dir, 'index.sqlite-wal')]) {
        assert.equal(statSync(f).mode & 0o777, 0o600, f);
      }
    } finally {
      cache.close();
    }
  }));

  test('a flipped byte, a truncated file or a missing file is never served: dropped, then storable again', withDir(async (dir) => {
    const cache = DiskCache.open({ dir, sizeBytes: 16 * BLOCK_SIZE });
    const stats = new Stats();
    try {
      const snap = cache.snapshotKey('snap-0123456789abcdef0', 1);
      const blocks = [block(), block(), block()];
      for (const [i, b] of blocks.entries()) await cache.put(snap, i, b.data, b.hash);
      const [flip, trunc, gone] = blocks.map((b) => blobFiles(dir).find((f) => f.includes(b.hash.toString('hex')))!);
      const bytes = readFileSync(flip);
      bytes[12345] ^= 0x40;
      writeFileSync(flip, bytes);
      writeFileSync(trunc, readFileSync(trunc).subarray(0, BLOCK_SIZE - 1));
      rmSync(gone);
      for (let i = 0; i < 3; i++) assert.equal(await cache.get(snap, i, 'demand', stats), null, `block ${i}`);
      assert.equal(stats.get('disk.corrupt'), 2);
      assert.equal(cache.counters.corrupt, 2);
      assert.equal(blobFiles(dir).length, 0, 'bad files removed');
      assert.equal(cache.storedBytes, 0);
      assert.equal(cache.has(snap, 0), false);
      // Refetched and stored again: served.
      assert.equal(await cache.put(snap, 0, blocks[0]!.data, blocks[0]!.hash), 'stored');
      assert.ok((await cache.get(snap, 0))?.data.equals(blocks[0]!.data));
    } finally {
      cache.close();
    }
  }));

  test('equal content is stored once for every snapshot and index naming it', withDir(async (dir) => {
    const cache = DiskCache.open({ dir, sizeBytes: 16 * BLOCK_SIZE });
    try {
      const b = block();
      const a = cache.snapshotKey('snap-00000000000000001', 1);
      const c = cache.snapshotKey('snap-00000000000000002', 1);
      assert.equal(await cache.put(a, 1, b.data, b.hash), 'stored');
      assert.equal(await cache.put(c, 5, b.data, b.hash), 'linked');
      assert.equal(cache.link(c, 6, b.hash), true);
      assert.equal(cache.link(c, 7, block().hash), false, 'unknown content: nothing to link');
      assert.equal(blobFiles(dir).length, 1);
      for (const [s, i] of [[a, 1], [c, 5], [c, 6]] as const) assert.ok((await cache.get(s, i))?.data.equals(b.data));
      assert.equal(await cache.get(c, 7), null);
    } finally {
      cache.close();
    }
  }));

  test('the size bound holds; the least recently used blocks go first', withDir(async (dir) => {
    const cache = DiskCache.open({ dir, sizeBytes: 4 * BLOCK_SIZE });
    try {
      const snap = cache.snapshotKey('snap-0123456789abcdef0', 1);
      const blocks = Array.from({ length: 10 }, () => block());
      let t = 1_000;
      (cache as unknown as { now: () => number }).now = () => t;
      for (let i = 0; i < 4; i++) {
        t += 10;
        await cache.put(snap, i, blocks[i]!.data, blocks[i]!.hash);
      }
      t += 10;
      assert.ok(await cache.get(snap, 0), 'block 0 used again');
      cache.flushTouches();
      for (let i = 4; i < 10; i++) {
        t += 10;
        await cache.put(snap, i, blocks[i]!.data, blocks[i]!.hash);
        assert.ok(cache.storedBytes <= 4 * BLOCK_SIZE, `after put ${i}: ${cache.storedBytes}`);
        assert.ok(blobFiles(dir).length <= 4);
      }
      assert.ok(await cache.get(snap, 9), 'the newest block is kept');
      assert.equal(await cache.get(snap, 1), null, 'an old block was evicted');
      assert.ok(cache.counters.evictions >= 6);
    } finally {
      cache.close();
    }
  }));

  test('entries left by a killed writer are removed at open; READY entries stay', withDir(async (dir) => {
    const cache = DiskCache.open({ dir, sizeBytes: 16 * BLOCK_SIZE });
    const snap = cache.snapshotKey('snap-0123456789abcdef0', 1);
    const kept = block();
    await cache.put(snap, 0, kept.data, kept.hash);
    cache.close();
    // A writer that died mid-write: its WRITING row, a tmp file, and a half-renamed blob.
    const dead = spawnSync('true').pid!;
    const index = new DiskCacheIndex(join(dir, 'index.sqlite'));
    const torn = block();
    const id = index.write(() => {
      const id = index.insertBlob(torn.hash, BLOCK_SIZE, Date.now(), dead);
      index.addBytes(BLOCK_SIZE);
      index.setBlock(snap, 1, id);
      return id;
    });
    index.close();
    const tmp = join(dir, 'tmp', `${id}.tmp`);
    writeFileSync(tmp, torn.data.subarray(0, 1000));
    const reopened = DiskCache.open({ dir, sizeBytes: 16 * BLOCK_SIZE });
    try {
      assert.equal(existsSync(tmp), false);
      assert.equal(reopened.storedBytes, BLOCK_SIZE);
      assert.equal(await reopened.get(snap, 1), null);
      assert.ok((await reopened.get(snap, 0))?.data.equals(kept.data));
      // The torn content can be stored afresh.
      assert.equal(await reopened.put(snap, 1, torn.data, torn.hash), 'stored');
      assert.ok((await reopened.get(snap, 1))?.data.equals(torn.data));
    } finally {
      reopened.close();
    }
  }));

  test('a WRITING entry of a live writer is not served, nor removed by another opener', withDir(async (dir) => {
    const cache = DiskCache.open({ dir, sizeBytes: 16 * BLOCK_SIZE });
    const snap = cache.snapshotKey('snap-0123456789abcdef0', 1);
    cache.close();
    const index = new DiskCacheIndex(join(dir, 'index.sqlite'));
    const b = block();
    index.write(() => index.setBlock(snap, 3, index.insertBlob(b.hash, BLOCK_SIZE, Date.now(), process.pid)));
    index.close();
    const other = DiskCache.open({ dir, sizeBytes: 16 * BLOCK_SIZE });
    try {
      assert.equal(await other.get(snap, 3), null);
      assert.equal(await other.put(snap, 4, b.data, b.hash), 'linked', 'being written by someone else: named, not written twice');
      const check = new DiskCacheIndex(join(dir, 'index.sqlite'));
      assert.equal(check.blobByHash(b.hash)?.state, BlobState.WRITING);
      check.close();
    } finally {
      other.close();
    }
  }));

  test('lineage candidates: most recent first, same volume size, holding blocks, not known unrelated', withDir(async (dir) => {
    let t = 0;
    const cache = DiskCache.open({ dir, sizeBytes: 16 * BLOCK_SIZE, now: () => ++t });
    try {
      const ids = ['snap-00000000000000001', 'snap-00000000000000002', 'snap-00000000000000003', 'snap-00000000000000004'];
      const b = block();
      for (const id of ids) await cache.put(cache.snapshotKey(id, id.endsWith('3') ? 2 : 1), 0, b.data, b.hash);
      cache.snapshotKey('snap-00000000000000005', 1); // no blocks
      cache.markUnrelated('snap-00000000000000009', 'snap-00000000000000002');
      assert.deepEqual(cache.recentSnapshots(1, 'snap-00000000000000009', 3), ['snap-00000000000000004', 'snap-00000000000000001']);
      assert.deepEqual(cache.recentSnapshots(1, 'snap-00000000000000004', 1), ['snap-00000000000000002']);
      assert.equal(cache.isUnrelated('snap-00000000000000002', 'snap-00000000000000009'), true);
    } finally {
      cache.close();
    }
  }));
});
