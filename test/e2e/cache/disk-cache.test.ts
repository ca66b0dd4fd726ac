/**
 * E2E: `--disk-cache` on real mounts against the real local server, requests counted by the
 * server's own log: a remount reads from the cache with no GetSnapshotBlock; a cached block whose
 * file was damaged is caught, dropped and refetched; kill -9 of a daemon while it fills the cache
 * leaves a cache that opens and holds only good blocks; two mounts share one cache at once; the
 * size bound holds; export uses and fills the same cache.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ebsClient, makeSnapshot, seededBlock, type TestServer } from '../../helpers/server.js';
import { cleanup, cleanupAll, isMounted, mountSnapshot, sh, tempDir, waitGone } from '../../helpers/mounts.js';
import { runCli } from '../../helpers/cli.js';
import {
  BLOCK, badBlobFiles, blobBytes, blobFileOf, blobFiles, differingBlocks, expected, readImage, serverGets, startCountingServer,
} from './harness.js';

const BLOCKS = 48;

describe('disk cache', { timeout: 300_000 }, () => {
  let server: TestServer;
  let work: string;
  let snap: string;
  const model = new Map<number, Buffer>();

  before(async () => {
    server = await startCountingServer(['--latency-ms', '5']);
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-dc-');
    for (let i = 0; i < BLOCKS; i++) if (i % 7 !== 3) model.set(i, seededBlock(1000 + i));
    snap = await makeSnapshot(ebsClient(server.endpoint), model);
  });
  after(() => cleanupAll());

  test('a remount reads every block from the disk cache: no GetSnapshotBlock, same bytes', async () => {
    const dir = join(work, 'c1');
    const want = expected(model, BLOCKS);
    const m1 = await mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir] });
    assert.deepEqual(differingBlocks(await readImage(m1.imagePath, BLOCKS), want), []);
    assert.equal((await m1.unmount()).code, 0);
    const fetched = serverGets(server, snap);
    assert.equal(fetched, model.size, 'the first mount fetched each block once');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of [...blobFiles(dir), join(dir, 'index.sqlite')]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    assert.equal(blobFiles(dir).length, model.size);

    const m2 = await mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir] });
    assert.deepEqual(differingBlocks(await readImage(m2.imagePath, BLOCKS), want), []);
    const st = await m2.status();
    assert.equal(serverGets(server, snap), fetched, 'no request on the server');
    assert.equal(st.stats['ebs.get.requests'] ?? 0, 0);
    assert.equal(st.stats['disk.hit'], model.size);
    const savings = st.savings as { diskHits: number; requestsAvoided: number; savedUsd: number };
    assert.equal(savings.requestsAvoided, model.size);
    assert.ok(savings.savedUsd > 0);
    const table = await runCli(['status', m2.mountpoint]);
    assert.match(table.stdout, new RegExp(`disk cache\\s+${model.size} hits`));
    assert.match(table.stdout, /requests avoided\s+\d+ \(memory hits \d+, disk \d+, lineage 0\); saved \$/);
    assert.equal((await m2.unmount()).code, 0);
  });

  test('a damaged cached block is caught, dropped and refetched, never served', async () => {
    const dir = join(work, 'c2');
    const want = expected(model, BLOCKS);
    const m1 = await mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir] });
    await readImage(m1.imagePath, BLOCKS);
    assert.equal((await m1.unmount()).code, 0);
    const flipped = blobFileOf(dir, model.get(11)!)!;
    const truncated = blobFileOf(dir, model.get(20)!)!;
    assert.ok(flipped && truncated);
    const bytes = readFileSync(flipped);
    bytes[4096] ^= 0xff;
    writeFileSync(flipped, bytes);
    writeFileSync(truncated, readFileSync(truncated).subarray(0, 100_000));
    const before = serverGets(server, snap);

    const m2 = await mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir] });
    assert.deepEqual(differingBlocks(await readImage(m2.imagePath, BLOCKS), want), []);
    const st = await m2.status();
    assert.equal(st.stats['disk.corrupt'], 2);
    assert.equal(serverGets(server, snap) - before, 2, 'exactly the two damaged blocks were refetched');
    assert.equal((await m2.unmount()).code, 0);
    assert.deepEqual(badBlobFiles(dir), [], 'refetched blocks were stored again, good');
  });

  test('kill -9 while the cache fills: the cache opens again and holds only good blocks', async () => {
    const dir = join(work, 'c3');
    const want = expected(model, BLOCKS);
    const m1 = await mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir, '--read-ahead', '2M'] });
    // A reader in another process (its EIO after the kill is expected).
    const reader = spawn('dd', [`if=${m1.imagePath}`, 'of=/dev/null', 'bs=128k', `count=${(BLOCKS * BLOCK) / 131072}`], { stdio: 'ignore' });
    const readerDone = new Promise((r) => reader.once('exit', r));
    const until = Date.now() + 60_000;
    while (((await m1.status()).stats['disk.stored'] ?? 0) < 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    process.kill(m1.pid, 'SIGKILL');
    assert.ok(await waitGone(m1.pid, 10_000));
    await readerDone;
    await sh('umount', ['-l', m1.mountpoint]);
    assert.equal(await isMounted(m1.mountpoint), false);

    const m2 = await mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir] });
    assert.deepEqual(differingBlocks(await readImage(m2.imagePath, BLOCKS), want), []);
    const st = await m2.status();
    assert.ok((st.stats['disk.hit'] ?? 0) >= 1, 'blocks written before the kill are served');
    assert.equal(st.stats['disk.corrupt'] ?? 0, 0);
    assert.equal((await m2.unmount()).code, 0);
    assert.deepEqual(badBlobFiles(dir), []);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), [], 'no half-written file is left behind');
    assert.equal(blobFiles(dir).length, model.size);
  });

  test('two mounts share one cache at once; a third mount then needs no request', async () => {
    const dir = join(work, 'c4');
    const want = expected(model, BLOCKS);
    const before = serverGets(server, snap);
    const [a, b] = await Promise.all([
      mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir] }),
      mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir] }),
    ]);
    const [ra, rb] = await Promise.all([readImage(a.imagePath, BLOCKS), readImage(b.imagePath, BLOCKS)]);
    assert.deepEqual(differingBlocks(ra, want), []);
    assert.deepEqual(differingBlocks(rb, want), []);
    assert.equal((await a.unmount()).code, 0);
    assert.equal((await b.unmount()).code, 0);
    assert.ok(serverGets(server, snap) - before <= 2 * model.size);
    assert.deepEqual(badBlobFiles(dir), []);
    assert.equal(blobFiles(dir).length, model.size, 'each content stored once');
    const mid = serverGets(server, snap);
    const c = await mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir] });
    assert.deepEqual(differingBlocks(await readImage(c.imagePath, BLOCKS), want), []);
    assert.equal(serverGets(server, snap), mid);
    assert.equal((await c.unmount()).code, 0);
  });

  test('the size bound holds (--disk-cache-size 4M = 8 blocks)', async () => {
    const dir = join(work, 'c5');
    const m = await mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir, '--disk-cache-size', '4M'] });
    assert.deepEqual(differingBlocks(await readImage(m.imagePath, BLOCKS), expected(model, BLOCKS)), []);
    const st = await m.status();
    const dc = st.diskCache as { storedBytes: number; sizeBytes: number };
    assert.equal(dc.sizeBytes, 4 * 1024 * 1024);
    assert.ok(dc.storedBytes <= dc.sizeBytes, `${dc.storedBytes} stored`);
    assert.equal((await m.unmount()).code, 0);
    assert.ok(blobBytes(dir) <= 4 * 1024 * 1024, `${blobBytes(dir)} bytes of blob files`);
    assert.ok(blobFiles(dir).length >= 1);
    assert.deepEqual(badBlobFiles(dir), []);
  });

  test('export uses and fills the same cache', async () => {
    const dir = join(work, 'c6');
    const out1 = join(work, 'export1.img');
    const out2 = join(work, 'export2.img');
    const before = serverGets(server, snap);
    const r1 = await runCli(['export', snap, out1, '--endpoint', server.endpoint, '--disk-cache', dir]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(serverGets(server, snap) - before, model.size);
    const r2 = await runCli(['export', snap, out2, '--endpoint', server.endpoint, '--disk-cache', dir]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(serverGets(server, snap) - before, model.size, 'the second export made no GetSnapshotBlock');
    for (const f of [out1, out2]) assert.deepEqual(differingBlocks(readFileSync(f).subarray(0, BLOCKS * BLOCK), expected(model, BLOCKS)), []);
    // A mount finds the blocks the export stored.
    const m = await mountSnapshot(server.endpoint, snap, { args: ['--disk-cache', dir] });
    await readImage(m.imagePath, BLOCKS);
    assert.equal(serverGets(server, snap) - before, model.size);
    assert.equal((await m.unmount()).code, 0);
  });

  test('bad cache options are usage errors', async () => {
    const mnt = await tempDir('ebsmount-dc-opt-');
    cleanup.add(`mount at ${mnt}, if a check failed`, async () => {
      if (await isMounted(mnt)) await runCli(['unmount', mnt]);
      if (await isMounted(mnt)) await sh('umount', ['-l', mnt]);
    });
    const r1 = await runCli([snap, mnt, '--endpoint', server.endpoint, '--base', snap]);
    assert.equal(r1.code, 2);
    assert.match(r1.stderr, /^ebsmount: --base needs --disk-cache/m);
    const r2 = await runCli([snap, mnt, '--endpoint', server.endpoint, '--disk-cache', join(work, 'c7'), '--disk-cache-size', 'lots']);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /^ebsmount: --disk-cache-size 'lots' is not a size/m);
    writeFileSync(join(work, 'plainfile'), 'x');
    const r3 = await runCli([snap, mnt, '--endpoint', server.endpoint, '--disk-cache', join(work, 'plainfile')]);
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /^ebsmount: cannot open the disk cache .*plainfile/m);
    assert.equal(await isMounted(mnt), false);
  });
});
