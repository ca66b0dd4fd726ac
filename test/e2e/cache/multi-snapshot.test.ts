/**
 * E2E: several snapshots in one mount (`ebsmount G1 G2 G3 MNT`), three generations of one
 * volume, real FUSE and the real local server, requests counted by the server: each image reads
 * as its own snapshot; the child images cost only the blocks that changed from the generation
 * before (lineage through the shared read path); `status` shows each image; usage errors.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ebsClient, makeSnapshot, seededBlock, type TestServer } from '../../helpers/server.js';
import { cleanup, cleanupAll, isMounted, sh, statusOf, tempDir, waitGone } from '../../helpers/mounts.js';
import { runCli } from '../../helpers/cli.js';
import { BLOCK, differingBlocks, expected, readImage, serverGets, startCountingServer } from './harness.js';

const BLOCKS = 40;

describe('multi-snapshot mount of three generations', { timeout: 300_000 }, () => {
  let server: TestServer;
  let g1: string;
  let g2: string;
  let g3: string;
  const m1 = new Map<number, Buffer>();
  let m2: Map<number, Buffer>;
  let m3: Map<number, Buffer>;

  before(async () => {
    server = await startCountingServer();
    cleanup.add('server', () => server.stop());
    const client = ebsClient(server.endpoint);
    for (let i = 0; i < 32; i++) m1.set(i, seededBlock(5000 + i));
    g1 = await makeSnapshot(client, m1);
    const own2 = new Map([[3, seededBlock(6003)], [4, Buffer.alloc(BLOCK)], [35, seededBlock(6035)]]);
    g2 = await makeSnapshot(client, own2, { parent: g1 });
    m2 = new Map([...m1, ...own2]);
    const own3 = new Map([[3, seededBlock(7003)], [20, seededBlock(7020)]]);
    g3 = await makeSnapshot(client, own3, { parent: g2 });
    m3 = new Map([...m2, ...own3]);
  });
  after(() => cleanupAll());

  test('one daemon serves G1.img, G2.img and G3.img; children cost only their changed blocks', async () => {
    const base = await tempDir('ebsmount-multi-');
    const mnt = join(base, 'mnt');
    await sh('mkdir', [mnt]);
    const env = { XDG_STATE_HOME: join(base, 'state') };
    cleanup.add(`multi mount ${mnt}`, async () => {
      if (await isMounted(mnt)) await runCli(['unmount', mnt], { env, timeoutMs: 120_000 });
      if (await isMounted(mnt)) await sh('umount', ['-l', mnt]);
    });
    const r = await runCli([g1, g2, g3, mnt, '--endpoint', server.endpoint], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`mounted ${g1}, ${g2}, ${g3} at ${mnt}`));
    assert.deepEqual((await readdir(mnt)).sort(), [`${g1}.img`, `${g2}.img`, `${g3}.img`].sort());

    assert.deepEqual(differingBlocks(await readImage(join(mnt, `${g1}.img`), BLOCKS), expected(m1, BLOCKS)), []);
    assert.equal(serverGets(server, g1), 32);
    assert.deepEqual(differingBlocks(await readImage(join(mnt, `${g2}.img`), BLOCKS), expected(m2, BLOCKS)), []);
    assert.equal(serverGets(server, g2), 3, 'G2: its changed, zeroed and new blocks only');
    const got3 = await readImage(join(mnt, `${g3}.img`), BLOCKS);
    assert.deepEqual(differingBlocks(got3, expected(m3, BLOCKS)), []);
    assert.ok(got3.subarray(4 * BLOCK, 5 * BLOCK).every((x) => x === 0), 'G2 zeroed block 4: G3 reads zeros there');
    assert.equal(serverGets(server, g3), 2, 'G3: its two changed blocks only');
    assert.equal(serverGets(server, g1), 32, 'G1 was not asked again');

    const st = await statusOf(mnt);
    const images = st.images as { snapshotId: string; lineage: { base: string } | null; stats: Record<string, number> }[];
    assert.deepEqual(images.map((i) => i.snapshotId), [g1, g2, g3]);
    assert.equal(images[0]!.lineage, null);
    assert.equal(images[1]!.lineage?.base, g1);
    assert.equal(images[2]!.lineage?.base, g2, 'the generation just before is tried first');
    assert.equal(st.stats['ebs.get.requests'], 32 + 3 + 2, 'top-level counters add up the images');
    const table = await runCli(['status', mnt], { env });
    for (const g of [g1, g2, g3]) assert.match(table.stdout, new RegExp(`image\\s+${join(mnt, `${g}.img`)}: 1 GiB`));

    const u = await runCli(['unmount', mnt], { env, timeoutMs: 120_000 });
    assert.equal(u.code, 0, u.stderr);
    assert.equal(await isMounted(mnt), false);
    assert.ok(await waitGone(st.pid as number, 10_000));
  });

  test('usage errors: --writable with several snapshots, a snapshot given twice', async () => {
    const mnt = await tempDir('ebsmount-multi-err-');
    const w = await runCli([g1, g2, mnt, '--endpoint', server.endpoint, '--writable']);
    assert.equal(w.code, 2);
    assert.match(w.stderr, /^ebsmount: --writable mounts one snapshot/m);
    const d = await runCli([g1, g1, mnt, '--endpoint', server.endpoint]);
    assert.equal(d.code, 2);
    assert.match(d.stderr, new RegExp(`^ebsmount: ${g1} is given twice`, 'm'));
    assert.equal(await isMounted(mnt), false);
  });
});
