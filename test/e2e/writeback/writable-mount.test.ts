/**
 * End-to-end: writable mounts through real FUSE, loop devices, ext4 and the real server.
 * - ext4 in a writable mount: create, modify, delete files; unmount prints the child; the child
 *   holds exactly the expected tree; the parent is unchanged; ListChangedBlocks(parent, child) is
 *   exactly the set of blocks whose bytes differ.
 * - raw writes at odd offsets and lengths (zeroing blocks the parent had included) checked
 *   against a byte model: through the writable mount, and in the child.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, cp, mkdir, open, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { runCli } from '../../helpers/cli.js';
import { makeExt4Image, makeTree, seededBytes, treeManifest, prng } from '../../helpers/images.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import {
  Cleanup, changedBlocks, childrenOf, differingBlocks, isMounted, isolateState, loopAttach, loopDetach, mountCli, mountFs,
  printedId, tempDir, umountQuiet,
} from './harness.js';

const MiB = 1024 * 1024;
const VOLUME = 1024 * MiB;

describe('writable mount (e2e)', { timeout: 170_000 }, () => {
  const cleanup = new Cleanup();
  let server: TestServer;
  let work: string;

  before(async () => {
    await isolateState(cleanup);
    server = await startServer();
    cleanup.add('stop server', () => server.stop());
    work = await tempDir(cleanup, 'ebsmount-wb-work-');
  });

  after(async () => {
    await cleanup.run();
  });

  async function importImage(path: string): Promise<string> {
    const r = await runCli(['import', path, '--endpoint', server.endpoint], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    return printedId(r);
  }

  async function unmountChild(mountpoint: string): Promise<string> {
    const r = await runCli(['unmount', mountpoint], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `unmount failed: ${r.stderr}`);
    assert.equal(await isMounted(mountpoint), false);
    return printedId(r);
  }

  test('ext4: create, modify, delete; the child holds exactly the expected tree; the parent is unchanged; ListChangedBlocks is exact', async () => {
    const src = join(work, 'src');
    await makeTree(src, { files: 300, seed: 4 });
    const img = join(work, 'ext4.img');
    await makeExt4Image(img, 96, src);
    const parentId = await importImage(img);

    const m = await mountCli(cleanup, server.endpoint, parentId, ['--writable', '--description', 'e2e fix-up', '--tag', 'case=42']);
    assert.equal((await stat(m.imagePath)).mode & 0o777, 0o600, 'a writable image is mode 0600');
    const dev = await loopAttach(cleanup, m.imagePath, false);
    const fs = await mountFs(cleanup, dev, 'rw');

    const expected = join(work, 'expected');
    await cp(src, expected, { recursive: true, verbatimSymlinks: true });
    const edit = async (root: string): Promise<void> => {
      await mkdir(join(root, 'added', 'deep'), { recursive: true });
      for (let i = 0; i < 40; i++) await writeFile(join(root, 'added', `n${i}.txt`), seededBytes(9, `n${i}`, 100 + i * 137));
      await writeFile(join(root, 'added', 'deep', 'large.bin'), seededBytes(9, 'large', 6 * MiB + 12345));
      const fh = await open(join(root, 'big', 'large1.bin'), 'r+');
      await fh.write(seededBytes(9, 'patch', 100 * 1024), 0, 100 * 1024, 300_001);
      await fh.close();
      await appendFile(join(root, 'd0', 's0', 'f0.dat'), 'appended line\n');
      await truncate(join(root, 'd2', 's0', 'f2.dat'), 7);
      await rm(join(root, 'd1', 's1'), { recursive: true, force: true });
      await rm(join(root, 'big', 'large2.bin'));
      await rename(join(root, 'd3', 's0', 'f3.dat'), join(root, 'added', 'moved.dat'));
    };
    await edit(fs);
    await edit(expected);
    await umountQuiet(fs);
    await loopDetach(dev);

    const childId = await unmountChild(m.mountpoint);
    assert.notEqual(childId, parentId);
    assert.deepEqual(await childrenOf(server.dataDir, parentId), [childId], 'exactly one child');

    const child = await mountCli(cleanup, server.endpoint, childId);
    const childFs = await mountFs(cleanup, await loopAttach(cleanup, child.imagePath, true), 'ro,noload');
    assert.deepEqual(await treeManifest(childFs), await treeManifest(expected), 'the child holds exactly the expected tree');

    const parent = await mountCli(cleanup, server.endpoint, parentId);
    const parentFs = await mountFs(cleanup, await loopAttach(cleanup, parent.imagePath, true), 'ro,noload');
    assert.deepEqual(await treeManifest(parentFs), await treeManifest(src), 'the parent still reads unchanged');

    const differ = await differingBlocks(parent.imagePath, child.imagePath, VOLUME);
    assert.ok(differ.length > 10, `blocks changed: ${differ.length}`);
    assert.deepEqual(await changedBlocks(server.endpoint, parentId, childId), differ, 'ListChangedBlocks(parent, child) = blocks whose bytes differ');
  });

  test('raw writes at odd offsets and lengths match a byte model; zeroed parent blocks read as zeros in the child', async () => {
    // Parent: 6 MiB of data with a hole at blocks 4-5.
    const parentBytes = seededBytes(21, 'raw-parent', 16 * MiB);
    parentBytes.fill(0, 4 * BLOCK_SIZE, 6 * BLOCK_SIZE);
    parentBytes.fill(0, 12 * BLOCK_SIZE);
    const img = join(work, 'raw.img');
    await writeFile(img, parentBytes.subarray(0, 12 * BLOCK_SIZE));
    const parentId = await importImage(img);

    const m = await mountCli(cleanup, server.endpoint, parentId, ['--writable']);
    const model = Buffer.from(parentBytes);
    const fh = await open(m.imagePath, 'r+');
    try {
      const rand = prng(77);
      for (let k = 0; k < 150; k++) {
        const length = 1 + Math.floor(rand() * (rand() < 0.1 ? 3 * BLOCK_SIZE : 70_000));
        const position = Math.floor(rand() * (model.length - length));
        const data = seededBytes(k, 'w', length);
        const { bytesWritten } = await fh.write(data, 0, length, position);
        assert.equal(bytesWritten, length);
        data.copy(model, position);
      }
      // Zero block 2 (parent data) in one write, block 7 in odd pieces, and part of block 9.
      await fh.write(Buffer.alloc(BLOCK_SIZE), 0, BLOCK_SIZE, 2 * BLOCK_SIZE);
      model.fill(0, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE);
      for (let off = 0; off < BLOCK_SIZE; ) {
        const n = Math.min(BLOCK_SIZE - off, 33_333);
        await fh.write(Buffer.alloc(n), 0, n, 7 * BLOCK_SIZE + off);
        off += n;
      }
      model.fill(0, 7 * BLOCK_SIZE, 8 * BLOCK_SIZE);
      await fh.write(Buffer.alloc(1001), 0, 1001, 9 * BLOCK_SIZE + 17);
      model.fill(0, 9 * BLOCK_SIZE + 17, 9 * BLOCK_SIZE + 17 + 1001);
      await fh.sync();

      const back = Buffer.alloc(model.length);
      const { bytesRead } = await fh.read(back, 0, back.length, 0);
      assert.equal(bytesRead, back.length);
      assert.ok(back.equals(model), 'the writable mount reads back its writes');
    } finally {
      await fh.close();
    }
    const childId = await unmountChild(m.mountpoint);

    const child = await mountCli(cleanup, server.endpoint, childId);
    const cf = await open(child.imagePath, 'r');
    try {
      const got = Buffer.alloc(model.length);
      await cf.read(got, 0, got.length, 0);
      assert.ok(got.subarray(2 * BLOCK_SIZE, 3 * BLOCK_SIZE).every((b) => b === 0), 'block 2 (zeroed) reads as zeros');
      assert.ok(got.subarray(7 * BLOCK_SIZE, 8 * BLOCK_SIZE).every((b) => b === 0), 'block 7 (zeroed in pieces) reads as zeros');
      assert.ok(got.equals(model), 'the child equals the byte model');
    } finally {
      await cf.close();
    }
    const changed = await changedBlocks(server.endpoint, parentId, childId);
    const expectChanged: number[] = [];
    for (let i = 0; i * BLOCK_SIZE < model.length; i++) {
      if (!model.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE).equals(parentBytes.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE))) expectChanged.push(i);
    }
    assert.ok(changed.includes(2) && changed.includes(7));
    assert.deepEqual(changed, expectChanged);
    const parent = await mountCli(cleanup, server.endpoint, parentId);
    const pf = await open(parent.imagePath, 'r');
    try {
      const block2 = Buffer.alloc(BLOCK_SIZE);
      await pf.read(block2, 0, BLOCK_SIZE, 2 * BLOCK_SIZE);
      assert.ok(block2.equals(parentBytes.subarray(2 * BLOCK_SIZE, 3 * BLOCK_SIZE)), 'the parent keeps its block 2');
    } finally {
      await pf.close();
    }
  });

  test('no writes: unmount makes no snapshot and says so; --discard throws writes away', async () => {
    const img = join(work, 'small.img');
    await writeFile(img, seededBytes(5, 'small', 2 * BLOCK_SIZE));
    const parentId = await importImage(img);

    const idle = await mountCli(cleanup, server.endpoint, parentId, ['--writable']);
    const r = await runCli(['unmount', idle.mountpoint]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /no (writes|changes)|no snapshot/i);

    const scratch = await mountCli(cleanup, server.endpoint, parentId, ['--writable']);
    const fh = await open(scratch.imagePath, 'r+');
    await fh.write(Buffer.alloc(5000, 7), 0, 5000, 100);
    await fh.close();
    const d = await runCli(['unmount', scratch.mountpoint, '--discard']);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.stdout, '');
    assert.deepEqual(await childrenOf(server.dataDir, parentId), [], 'no child snapshot at all');
    const j = await runCli(['journals', '--json', '--all']);
    assert.equal(j.code, 0);
    const listed = (JSON.parse(j.stdout) as { parentSnapshotId: string }[]).filter((x) => x.parentSnapshotId === parentId);
    assert.deepEqual(listed, [], 'neither mount left a journal behind');
  });
});
