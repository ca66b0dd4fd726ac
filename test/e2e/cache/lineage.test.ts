/**
 * E2E: lineage sharing through the disk cache, real mounts and the real local server, requests
 * counted by the server. P (root) is read once; its child C (a block changed, a block rewritten
 * as zeros, a new block) then costs exactly its changed blocks; C's child D costs its one new
 * block; C mounted with D as base reads D's extra block as zeros and makes no request; an
 * unrelated --base is a one-line error and nothing is mounted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ebsClient, makeSnapshot, seededBlock, type TestServer } from '../../helpers/server.js';
import { cleanup, cleanupAll, isMounted, mountSnapshot, tempDir } from '../../helpers/mounts.js';
import { runCli } from '../../helpers/cli.js';
import { BLOCK, differingBlocks, expected, readImage, serverGets, startCountingServer } from './harness.js';

const BLOCKS = 56;

describe('lineage through the disk cache', { timeout: 300_000 }, () => {
  let server: TestServer;
  let work: string;
  let dir: string;
  let p: string;
  let c: string;
  let d: string;
  let unrelated: string;
  const pModel = new Map<number, Buffer>();
  let cModel: Map<number, Buffer>;
  let dModel: Map<number, Buffer>;

  before(async () => {
    server = await startCountingServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-lineage-');
    dir = join(work, 'cache');
    const client = ebsClient(server.endpoint);
    for (let i = 0; i < 40; i++) pModel.set(i, seededBlock(2000 + i));
    p = await makeSnapshot(client, pModel);
    const cOwn = new Map([
      [5, seededBlock(3005)],
      [6, Buffer.alloc(BLOCK)],
      [45, seededBlock(3045)],
    ]);
    c = await makeSnapshot(client, cOwn, { parent: p });
    cModel = new Map([...pModel, ...cOwn]);
    const dOwn = new Map([[50, seededBlock(4050)]]);
    d = await makeSnapshot(client, dOwn, { parent: c });
    dModel = new Map([...cModel, ...dOwn]);
    unrelated = await makeSnapshot(client, new Map([[0, seededBlock(9)]]));
  });
  after(() => cleanupAll());

  test('a child whose parent was read costs only its changed blocks: changed, zeroed and new', async () => {
    const mp = await mountSnapshot(server.endpoint, p, { args: ['--disk-cache', dir] });
    assert.deepEqual(differingBlocks(await readImage(mp.imagePath, BLOCKS), expected(pModel, BLOCKS)), []);
    assert.equal((await mp.unmount()).code, 0);

    const mc = await mountSnapshot(server.endpoint, c, { args: ['--disk-cache', dir] });
    const got = await readImage(mc.imagePath, BLOCKS);
    assert.deepEqual(differingBlocks(got, expected(cModel, BLOCKS)), [], 'C reads as C, never as P');
    assert.ok(got.subarray(6 * BLOCK, 7 * BLOCK).every((x) => x === 0), 'the block C zeroed reads as zeros');
    assert.equal(serverGets(server, c), 3, 'requests = the 3 changed blocks');
    const st = await mc.status();
    assert.deepEqual(st.lineage, { base: p, changedBlocks: 3, complete: true });
    assert.equal(st.stats['lineage.hit'], 38);
    const table = await runCli(['status', mc.mountpoint]);
    assert.match(table.stdout, new RegExp(`lineage\\s+base ${p}: 38 hits, 3 blocks changed`));
    assert.equal((await mc.unmount()).code, 0);
  });

  test('a grandchild costs its one new block; its parent read with it as --base lacks that block and makes no request', async () => {
    const md = await mountSnapshot(server.endpoint, d, { args: ['--disk-cache', dir] });
    assert.deepEqual(differingBlocks(await readImage(md.imagePath, BLOCKS), expected(dModel, BLOCKS)), []);
    assert.equal(serverGets(server, d), 1);
    assert.equal((await md.unmount()).code, 0);

    // A fresh cache holding only D: C borrows every block it shares with D, and block 50 (D's
    // alone) must read as zeros.
    const onlyD = join(work, 'only-d');
    const md2 = await mountSnapshot(server.endpoint, d, { args: ['--disk-cache', onlyD] });
    await readImage(md2.imagePath, BLOCKS);
    assert.equal((await md2.unmount()).code, 0);
    const before = serverGets(server, c);
    const mc = await mountSnapshot(server.endpoint, c, { args: ['--disk-cache', onlyD, '--base', d] });
    const got = await readImage(mc.imagePath, BLOCKS);
    assert.deepEqual(differingBlocks(got, expected(cModel, BLOCKS)), []);
    assert.ok(got.subarray(50 * BLOCK, 51 * BLOCK).every((x) => x === 0), 'the block only D holds reads as zeros');
    assert.equal(serverGets(server, c), before, 'every block of C came from D');
    assert.equal(((await mc.status()).lineage as { base: string }).base, d);
    assert.equal((await mc.unmount()).code, 0);
  });

  test('an unrelated --base is a one-line error and nothing is mounted', async () => {
    const mnt = await tempDir('ebsmount-lineage-mnt-');
    const r = await runCli([c, mnt, '--endpoint', server.endpoint, '--disk-cache', dir, '--base', unrelated]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^ebsmount: --base ${unrelated} is not of the lineage of ${c}`));
    assert.equal(await isMounted(mnt), false);
  });
});
