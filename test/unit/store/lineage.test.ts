import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { EbsError } from '../../../src/ebs/errors.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { UserError } from '../../../src/errors/user-error.js';
import { DiskCache } from '../../../src/store/disk-cache.js';
import { openSnapshotVolume, type OpenedVolume } from '../../../src/store/open-volume.js';
import { FAST_RETRY, noSleep, randomBlocks } from './fixtures.js';

const GET = 'getSnapshotBlock';
const fast = { retryPolicy: FAST_RETRY, openRetryPolicy: FAST_RETRY, sleep: noSleep, backgroundCount: false };
const LAST = 16;

/**
 * G: blocks 0–9. C (child of G): block 2 rewritten, block 3 written as zeros, block 12 new.
 * D (child of C): block 15 new, so C "lacks" a block D holds.
 */
function lineage() {
  const api = new MemoryEbsApi();
  const g = randomBlocks([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const gId = api.createCompletedSnapshot(g, 1);
  const cOwn = randomBlocks([2, 12]);
  cOwn.set(3, Buffer.alloc(BLOCK_SIZE));
  const cId = api.createCompletedSnapshot(cOwn, 1, { parentSnapshotId: gId });
  const dOwn = randomBlocks([15]);
  const dId = api.createCompletedSnapshot(dOwn, 1, { parentSnapshotId: cId });
  const c = new Map([...g, ...cOwn]);
  const d = new Map([...c, ...dOwn]);
  const other = api.createCompletedSnapshot(randomBlocks([0, 1]), 1);
  return { api, gId, cId, dId, other, g, c, d };
}

async function readAll(v: OpenedVolume): Promise<(Buffer | null)[]> {
  const out: (Buffer | null)[] = [];
  for (let i = 0; i <= LAST; i++) out.push(await v.reader.readBlock(i));
  await v.local.disk?.settled();
  return out;
}

function assertContent(got: (Buffer | null)[], model: Map<number, Buffer>, what: string): void {
  for (let i = 0; i <= LAST; i++) {
    const want = model.get(i) ?? Buffer.alloc(BLOCK_SIZE);
    assert.ok((got[i] ?? Buffer.alloc(BLOCK_SIZE)).equals(want), `${what}: block ${i}`);
  }
}

function withCache(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), 'ebsmount-lineage-'));
    try {
      await fn(join(root, 'cache'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

describe('lineage through the disk cache', () => {
  test('a child serves unchanged blocks from its cached parent; changed, zeroed and new blocks are fetched', withCache(async (dir) => {
    const { api, gId, cId, g, c } = lineage();
    const cache = DiskCache.open({ dir });
    try {
      const vg = await openSnapshotVolume(api, gId, { ...fast, diskCache: cache });
      assertContent(await readAll(vg), g, 'G');
      vg.close();
      const before = api.calls.length;
      const vc = await openSnapshotVolume(api, cId, { ...fast, diskCache: cache });
      try {
        assert.equal(vc.local.lineage?.baseSnapshotId, gId, 'the cached snapshot of the same size is the base');
        assertContent(await readAll(vc), c, 'C');
        const fetched = api.calls.slice(before).filter((x) => x.op === GET).map((x) => x.index).sort((a, b) => a! - b!);
        assert.deepEqual(fetched, [2, 3, 12], 'exactly the changed blocks are requested');
        assert.equal(vc.stats.get('lineage.hit'), 8, 'blocks 0, 1, 4–9');
        // The layer itself, below the block map's zero knowledge: changed blocks are never borrowed.
        for (const i of [2, 3, 12]) assert.equal(await vc.local.lineage!.peek(i), null, `block ${i}`);
        assert.ok((await vc.local.lineage!.peek(4))?.data.equals(c.get(4)!));
      } finally {
        vc.close();
      }
      // The hits were recorded for C: a remount of C needs neither G nor requests.
      const again = api.counts(GET);
      const vc2 = await openSnapshotVolume(api, cId, { ...fast, diskCache: cache, base: gId });
      try {
        assertContent(await readAll(vc2), c, 'C again');
        assert.equal(api.counts(GET), again);
        assert.equal(vc2.stats.get('disk.hit'), 11, 'every block C holds');
      } finally {
        vc2.close();
      }
    } finally {
      cache.close();
    }
  }));

  test('with a descendant as base, a block the base holds and C lacks reads as zeros, changed ones as C has them', withCache(async (dir) => {
    const { api, cId, dId, d, c } = lineage();
    const cache = DiskCache.open({ dir });
    try {
      const vd = await openSnapshotVolume(api, dId, { ...fast, diskCache: cache });
      assertContent(await readAll(vd), d, 'D');
      vd.close();
      const before = api.counts(GET);
      const vc = await openSnapshotVolume(api, cId, { ...fast, diskCache: cache, base: dId });
      try {
        const got = await readAll(vc);
        assert.equal(got[15], null, 'block 15 (only in D) reads as zeros');
        assertContent(got, c, 'C from D');
        assert.equal(api.counts(GET), before, 'D and C agree on every block C has: no request');
        assert.equal(vc.stats.get('lineage.hit'), 11);
        assert.equal(await vc.local.lineage!.peek(15), null, 'the layer itself never lends block 15');
      } finally {
        vc.close();
      }
    } finally {
      cache.close();
    }
  }));

  test('an unrelated --base is a UserError; an unrelated cached candidate is remembered and skipped', withCache(async (dir) => {
    const { api, cId, other, g } = lineage();
    const cache = DiskCache.open({ dir });
    try {
      await assert.rejects(openSnapshotVolume(api, cId, { ...fast, diskCache: cache, base: other }), (e: unknown) => {
        return e instanceof UserError && /--base snap-\S+ is not of the lineage of snap-/.test(e.message);
      });
      const vo = await openSnapshotVolume(api, other, { ...fast, diskCache: cache });
      await readAll(vo);
      vo.close();
      const vc = await openSnapshotVolume(api, cId, { ...fast, diskCache: cache });
      assert.equal(vc.local.lineage, undefined, 'no related candidate');
      vc.close();
      assert.equal(cache.isUnrelated(other, cId), true);
      const lists = api.counts('listChangedBlocks');
      const vc2 = await openSnapshotVolume(api, cId, { ...fast, diskCache: cache });
      vc2.close();
      assert.equal(api.counts('listChangedBlocks'), lists, 'not asked again');
      assert.ok(g.size > 0);
    } finally {
      cache.close();
    }
  }));

  test('a listing that fails part-way: blocks beyond it are fetched, never borrowed', withCache(async (dir) => {
    const { api, gId, cId, g, c } = lineage();
    const cache = DiskCache.open({ dir });
    try {
      const vg = await openSnapshotVolume(api, gId, { ...fast, diskCache: cache });
      assertContent(await readAll(vg), g, 'G');
      vg.close();
      // One page of 100 would cover everything here: fail every page after the first instead by
      // failing the first outright, and see the reads fall through to requests.
      const denied = new EbsError('AccessDeniedException', 'no', { status: 403 });
      api.injectFailure('listChangedBlocks', denied, 1);
      const before = api.counts(GET);
      const vc = await openSnapshotVolume(api, cId, { ...fast, diskCache: cache, base: undefined });
      try {
        assert.equal(vc.local.lineage, undefined, 'the only candidate failed: no base');
        assertContent(await readAll(vc), c, 'C without lineage');
        assert.equal(api.counts(GET) - before, 11, 'every block C holds was fetched');
      } finally {
        vc.close();
      }
    } finally {
      cache.close();
    }
  }));
});
