/**
 * `ebsmount serve` end to end with the real SDK: lineage (children list and serve their parents'
 * blocks), ListChangedBlocks across a lineage tree, storage dedup, pagination (MaxResults bounds,
 * NextToken, StartingBlockIndex, short and empty pages) and block tokens (binding, tampering,
 * expiry with --token-ttl).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  GetSnapshotBlockCommand,
  ListChangedBlocksCommand,
  ListSnapshotBlocksCommand,
  paginateListSnapshotBlocks,
  type EBSClient,
} from '@aws-sdk/client-ebs';
import {
  ebsClient,
  getBlock,
  listAllBlocks,
  listAllChanged,
  makeSnapshot,
  seededBlock,
  startServer,
  type TestServer,
} from '../../helpers/server.js';

const BLOCK = 524_288;

async function rejectsWith(p: Promise<unknown>, name: string, opts: { reason?: string; message?: RegExp; status?: number } = {}): Promise<void> {
  await assert.rejects(p, (err: Error & { Reason?: string; $metadata?: { httpStatusCode?: number } }) => {
    assert.equal(err.name, name, `error ${err.name}: ${err.message}`);
    if (opts.reason !== undefined) assert.equal(err.Reason, opts.reason);
    if (opts.status !== undefined) assert.equal(err.$metadata?.httpStatusCode, opts.status);
    if (opts.message) assert.match(err.message, opts.message);
    return true;
  });
}

/** Files and bytes under DATA/blocks. */
async function blockStorage(dataDir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const root = join(dataDir, 'blocks');
  for (const sub of await readdir(root)) {
    for (const name of await readdir(join(root, sub))) {
      if (name.includes('.tmp-')) continue;
      files++;
      bytes += (await stat(join(root, sub, name))).size;
    }
  }
  return { files, bytes };
}

describe('ebsmount serve: lineage, changed blocks, dedup, pagination, tokens', () => {
  let server: TestServer;
  let client: EBSClient;

  before(async () => {
    server = await startServer();
    client = ebsClient(server.endpoint, { maxSockets: 64 });
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  describe('lineage', () => {
    // A: blocks 0..9 and 3000. B (child of A): rewrites 2 and 5, zeroes 7, rewrites 3 with A's
    // own content, adds 20. C (child of B): rewrites 5, adds 30. D (child of A): rewrites 2, adds 40.
    const a = new Map<number, Buffer>();
    for (let i = 0; i < 10; i++) a.set(i, seededBlock(100 + i));
    a.set(3000, seededBlock(199));
    const b = new Map<number, Buffer>([
      [2, seededBlock(202)],
      [5, seededBlock(205)],
      [7, Buffer.alloc(BLOCK)],
      [3, seededBlock(103)],
      [20, seededBlock(220)],
    ]);
    const c = new Map<number, Buffer>([
      [5, seededBlock(305)],
      [30, seededBlock(330)],
    ]);
    const d = new Map<number, Buffer>([
      [2, seededBlock(402)],
      [40, seededBlock(440)],
    ]);
    let A: string, B: string, C: string, D: string, U: string;
    const views = new Map<string, Map<number, Buffer>>();

    before(async () => {
      A = await makeSnapshot(client, a, { volumeSize: 2 });
      B = await makeSnapshot(client, b, { volumeSize: 2, parent: A });
      C = await makeSnapshot(client, c, { volumeSize: 3, parent: B });
      D = await makeSnapshot(client, d, { volumeSize: 2, parent: A });
      U = await makeSnapshot(client, new Map([[2, seededBlock(502)]]), { volumeSize: 2 });
      views.set(A, a);
      views.set(B, new Map([...a, ...b]));
      views.set(C, new Map([...a, ...b, ...c]));
      views.set(D, new Map([...a, ...d]));
    });

    test('a child lists and serves its parent blocks except those it overwrote', async () => {
      for (const id of [A, B, C, D]) {
        const view = views.get(id)!;
        const { blocks, indexes } = await listAllBlocks(client, id);
        assert.deepEqual(indexes, [...view.keys()].sort((x, y) => x - y), `listing of ${id}`);
        for (const [i, tok] of blocks) {
          const got = await getBlock(client, id, i, tok);
          assert.ok(got.data.equals(view.get(i)!), `block ${i} of ${id}`);
        }
      }
      // The block the child zeroed reads as zeros in the child, and as data in the parent.
      const { blocks } = await listAllBlocks(client, B, { startingBlockIndex: 7, maxResults: 100 });
      assert.ok((await getBlock(client, B, 7, blocks.get(7)!)).data.equals(Buffer.alloc(BLOCK)));
      const la = await listAllBlocks(client, A, { startingBlockIndex: 7 });
      assert.ok((await getBlock(client, A, 7, la.blocks.get(7)!)).data.equals(a.get(7)!));
      const lc = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: C }));
      assert.equal(lc.VolumeSize, 3);
    });

    test('ListChangedBlocks parent → child: blocks the child wrote; FirstBlockToken absent where the parent lacks them', async () => {
      const changed = await listAllChanged(client, A, B);
      assert.deepEqual(changed.map((x) => x.BlockIndex), [2, 3, 5, 7, 20]);
      for (const ch of changed) {
        const i = ch.BlockIndex!;
        assert.equal(ch.FirstBlockToken !== undefined, a.has(i), `FirstBlockToken of ${i}`);
        assert.ok(ch.SecondBlockToken, `SecondBlockToken of ${i}`);
        if (ch.FirstBlockToken) assert.ok((await getBlock(client, A, i, ch.FirstBlockToken)).data.equals(a.get(i)!));
        assert.ok((await getBlock(client, B, i, ch.SecondBlockToken!)).data.equals(views.get(B)!.get(i)!));
      }
      // A FirstBlockToken is a token of the first snapshot only.
      const two = changed.find((x) => x.BlockIndex === 2)!;
      await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: B, BlockIndex: 2, BlockToken: two.FirstBlockToken! })), 'ValidationException', {
        reason: 'INVALID_BLOCK_TOKEN',
      });
    });

    test('ListChangedBlocks across generations, in reverse order and between siblings', async () => {
      assert.deepEqual((await listAllChanged(client, A, C)).map((x) => x.BlockIndex), [2, 3, 5, 7, 20, 30]);
      assert.deepEqual((await listAllChanged(client, B, C)).map((x) => x.BlockIndex), [5, 30]);
      const rev = await listAllChanged(client, B, A);
      assert.deepEqual(rev.map((x) => x.BlockIndex), [2, 3, 5, 7, 20]);
      const twenty = rev.find((x) => x.BlockIndex === 20)!;
      assert.ok(twenty.FirstBlockToken && !twenty.SecondBlockToken, 'only the first (child) has block 20');
      const sib = await listAllChanged(client, D, C);
      assert.deepEqual(sib.map((x) => x.BlockIndex), [2, 3, 5, 7, 20, 30, 40]);
      const forty = sib.find((x) => x.BlockIndex === 40)!;
      assert.ok(forty.FirstBlockToken && !forty.SecondBlockToken);
      assert.ok((await getBlock(client, D, 40, forty.FirstBlockToken!)).data.equals(d.get(40)!));
      const thirty = sib.find((x) => x.BlockIndex === 30)!;
      assert.ok(!thirty.FirstBlockToken && thirty.SecondBlockToken);
      assert.deepEqual(await listAllChanged(client, B, B), []);
    });

    test('ListChangedBlocks without a first snapshot lists every block of the second', async () => {
      const all = await listAllChanged(client, undefined, B);
      assert.deepEqual(all.map((x) => x.BlockIndex), [...views.get(B)!.keys()].sort((x, y) => x - y));
      assert.ok(all.every((x) => !x.FirstBlockToken && x.SecondBlockToken));
    });

    test('ListChangedBlocks refuses unrelated snapshots (UNRELATED_SNAPSHOTS)', async () => {
      await rejectsWith(client.send(new ListChangedBlocksCommand({ FirstSnapshotId: U, SecondSnapshotId: B })), 'ValidationException', {
        reason: 'UNRELATED_SNAPSHOTS',
        status: 400,
      });
      await rejectsWith(client.send(new ListChangedBlocksCommand({ FirstSnapshotId: 'snap-0123456789abcdef0', SecondSnapshotId: B })), 'ResourceNotFoundException');
    });

    test('ListChangedBlocks pages with MaxResults and NextToken', async () => {
      const blocks = new Map<number, Buffer>();
      const same = seededBlock(600);
      for (let i = 0; i < 250; i++) blocks.set(i * 3, same);
      const child = await makeSnapshot(client, blocks, { volumeSize: 2, parent: A });
      const first = await client.send(new ListChangedBlocksCommand({ FirstSnapshotId: A, SecondSnapshotId: child, MaxResults: 100 }));
      assert.equal(first.ChangedBlocks!.length, 100);
      assert.ok(first.NextToken);
      const all = await listAllChanged(client, A, child, { maxResults: 100 });
      assert.deepEqual(all.map((x) => x.BlockIndex), [...blocks.keys()]);
      // A page token of one pair does not continue another.
      await rejectsWith(client.send(new ListChangedBlocksCommand({ FirstSnapshotId: B, SecondSnapshotId: child, NextToken: first.NextToken })), 'ValidationException', {
        reason: 'INVALID_PAGE_TOKEN',
      });
    });
  });

  test('storage: a block shared along a lineage is stored once', async () => {
    const parentBlocks = new Map<number, Buffer>();
    for (let i = 0; i < 20; i++) parentBlocks.set(i, seededBlock(700 + i));
    const before0 = await blockStorage(server.dataDir);
    const parent = await makeSnapshot(client, parentBlocks, { volumeSize: 1 });
    const before1 = await blockStorage(server.dataDir);
    assert.equal(before1.files - before0.files, 20);
    const child = await makeSnapshot(client, new Map([[5, seededBlock(800)]]), { parent });
    const after1 = await blockStorage(server.dataDir);
    assert.equal(after1.files - before1.files, 1, 'a child with one changed block adds one block file');
    assert.equal(after1.bytes - before1.bytes, BLOCK);
    // Rewriting a parent's block with identical content, or zeros, adds nothing.
    const grandchild = await makeSnapshot(client, new Map([[6, seededBlock(706)], [7, Buffer.alloc(BLOCK)]]), { parent: child });
    const after2 = await blockStorage(server.dataDir);
    assert.equal(after2.files, after1.files);
    const { blocks } = await listAllBlocks(client, grandchild);
    assert.equal(blocks.size, 20);
    assert.ok((await getBlock(client, grandchild, 5, blocks.get(5)!)).data.equals(seededBlock(800)));
    assert.ok((await getBlock(client, grandchild, 7, blocks.get(7)!)).data.equals(Buffer.alloc(BLOCK)));
  });

  describe('pagination', () => {
    let big: string;
    const indexes = Array.from({ length: 1050 }, (_, i) => i * 7 + 1);
    before(async () => {
      const same = seededBlock(900); // one block file, 1050 entries
      big = await makeSnapshot(client, new Map(indexes.map((i) => [i, same])), { volumeSize: 4 });
    });

    test('MaxResults must be 100..10000', async () => {
      for (const m of [99, 10_001, 0]) {
        await rejectsWith(client.send(new ListSnapshotBlocksCommand({ SnapshotId: big, MaxResults: m })), 'ValidationException', {
          reason: 'INVALID_PARAMETER_VALUE',
        });
      }
      assert.equal((await client.send(new ListSnapshotBlocksCommand({ SnapshotId: big, MaxResults: 100 }))).Blocks!.length, 100);
      assert.equal((await client.send(new ListSnapshotBlocksCommand({ SnapshotId: big, MaxResults: 10_000 }))).Blocks!.length, 1050);
    });

    test('NextToken pages through every block once, ascending', async () => {
      const { indexes: got, pages } = await listAllBlocks(client, big, { maxResults: 100 });
      assert.deepEqual(got, indexes);
      assert.equal(pages, 11);
      const sdkPages: number[] = [];
      const seen: number[] = [];
      for await (const page of paginateListSnapshotBlocks({ client, pageSize: 500 }, { SnapshotId: big })) {
        sdkPages.push(page.Blocks!.length);
        for (const b of page.Blocks!) seen.push(b.BlockIndex!);
      }
      assert.deepEqual(sdkPages, [500, 500, 50]);
      assert.deepEqual(seen, indexes);
    });

    test('a listing that ends exactly at a page boundary has no NextToken on its last page', async () => {
      const exact = await makeSnapshot(client, new Map(Array.from({ length: 200 }, (_, i) => [i, Buffer.alloc(BLOCK)])));
      const p1 = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: exact, MaxResults: 100 }));
      const p2 = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: exact, MaxResults: 100, NextToken: p1.NextToken }));
      assert.equal(p2.Blocks!.length, 100);
      assert.equal(p2.NextToken, undefined);
    });

    test('StartingBlockIndex starts the listing; NextToken wins over it', async () => {
      const r = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: big, StartingBlockIndex: 701, MaxResults: 100 }));
      assert.equal(r.Blocks![0]!.BlockIndex, 701);
      assert.deepEqual(r.Blocks!.map((b) => b.BlockIndex), indexes.filter((i) => i >= 701).slice(0, 100));
      const r2 = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: big, StartingBlockIndex: 702, MaxResults: 100 }));
      assert.equal(r2.Blocks![0]!.BlockIndex, 708);
      const next = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: big, StartingBlockIndex: 0, NextToken: r.NextToken, MaxResults: 100 }));
      assert.equal(next.Blocks![0]!.BlockIndex, indexes.filter((i) => i >= 701)[100]);
      const beyond = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: big, StartingBlockIndex: 100_000 }));
      assert.deepEqual(beyond.Blocks, []);
      assert.equal(beyond.NextToken, undefined);
    });

    test('a NextToken of another snapshot or a tampered one is INVALID_PAGE_TOKEN', async () => {
      const r = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: big, MaxResults: 100 }));
      const other = await makeSnapshot(client, new Map([[0, Buffer.alloc(BLOCK)]]));
      await rejectsWith(client.send(new ListSnapshotBlocksCommand({ SnapshotId: other, NextToken: r.NextToken })), 'ValidationException', {
        reason: 'INVALID_PAGE_TOKEN',
      });
      const t = r.NextToken!;
      const tampered = t.slice(0, 5) + (t[5] === 'A' ? 'B' : 'A') + t.slice(6);
      await rejectsWith(client.send(new ListSnapshotBlocksCommand({ SnapshotId: big, NextToken: tampered })), 'ValidationException', {
        reason: 'INVALID_PAGE_TOKEN',
      });
    });
  });

  describe('block tokens', () => {
    let id: string;
    let tokens: Map<number, string>;
    before(async () => {
      id = await makeSnapshot(client, new Map([[1, seededBlock(1001)], [2, seededBlock(1002)]]));
      tokens = (await listAllBlocks(client, id)).blocks;
    });

    test('tokens are opaque and differ between listings; both listings’ tokens work', async () => {
      const again = (await listAllBlocks(client, id)).blocks;
      assert.notEqual(again.get(1), tokens.get(1));
      assert.ok(!tokens.get(1)!.includes(id) && !tokens.get(1)!.includes('1001'));
      assert.ok((await getBlock(client, id, 1, again.get(1)!)).data.equals(seededBlock(1001)));
      assert.ok((await getBlock(client, id, 1, tokens.get(1)!)).data.equals(seededBlock(1001)));
    });

    test('a token of another block or snapshot, a tampered or empty one is INVALID_BLOCK_TOKEN', async () => {
      await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 2, BlockToken: tokens.get(1)! })), 'ValidationException', {
        reason: 'INVALID_BLOCK_TOKEN',
        status: 400,
      });
      const other = await makeSnapshot(client, new Map([[1, seededBlock(1001)]]));
      await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: other, BlockIndex: 1, BlockToken: tokens.get(1)! })), 'ValidationException', {
        reason: 'INVALID_BLOCK_TOKEN',
      });
      const t = tokens.get(1)!;
      const tampered = t.slice(0, -3) + (t.at(-3) === 'A' ? 'B' : 'A') + t.slice(-2);
      await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 1, BlockToken: tampered })), 'ValidationException', {
        reason: 'INVALID_BLOCK_TOKEN',
      });
      await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 1, BlockToken: 'garbage' })), 'ValidationException', {
        reason: 'INVALID_BLOCK_TOKEN',
      });
    });
  });
});

describe('ebsmount serve --token-ttl 1 --list-scan-window 1000', () => {
  let server: TestServer;
  let client: EBSClient;
  before(async () => {
    server = await startServer({ args: ['--token-ttl', '1', '--list-scan-window', '1000'] });
    client = ebsClient(server.endpoint);
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  test('block tokens expire at ExpiryTime with INVALID_BLOCK_TOKEN; listing again gives working ones', async () => {
    const id = await makeSnapshot(client, new Map([[3, seededBlock(1100)]]));
    const r = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: id }));
    const ttl = r.ExpiryTime!.getTime() - Date.now();
    assert.ok(ttl > 0 && ttl <= 1100, `ExpiryTime about 1 s ahead (${ttl} ms)`);
    const tok = r.Blocks![0]!.BlockToken!;
    assert.ok((await getBlock(client, id, 3, tok)).data.equals(seededBlock(1100)));
    await new Promise((res) => setTimeout(res, 1200));
    await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 3, BlockToken: tok })), 'ValidationException', {
      reason: 'INVALID_BLOCK_TOKEN',
      message: /expired/,
    });
    const fresh = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: id, StartingBlockIndex: 3 }));
    assert.ok((await getBlock(client, id, 3, fresh.Blocks![0]!.BlockToken!)).data.equals(seededBlock(1100)));
  });

  test('pages can be short or empty while NextToken is set; paging to the end finds every block', async () => {
    const idx = [0, 1, 2, 1500, 1501, 9000, 30_000, 30_001, 30_002, 30_003];
    const id = await makeSnapshot(client, new Map(idx.map((i) => [i, Buffer.alloc(BLOCK)])), { volumeSize: 16 });
    const sizes: number[] = [];
    const seen: number[] = [];
    let next: string | undefined;
    do {
      const r = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: id, MaxResults: 100, NextToken: next }));
      sizes.push(r.Blocks!.length);
      seen.push(...r.Blocks!.map((b) => b.BlockIndex!));
      next = r.NextToken;
    } while (next);
    assert.deepEqual(seen, idx);
    assert.ok(sizes.includes(0), `an empty page with a NextToken (${sizes.join(',')})`);
    assert.ok(sizes.slice(0, -1).some((n) => n > 0 && n < 100), 'a short page before the end');
  });
});
