/**
 * import → export round trips through the real CLI and a real `ebsmount serve`, with images made
 * by the real mkfs tools: ext4, xfs, btrfs and a GPT disk holding all three. Each export is
 * byte-identical to its image (then zeros up to VolumeSize), keeps holes (allocation no more
 * than the image's non-zero blocks), and passes the filesystem's own checker. Also: the snapshot
 * holds exactly the image's non-zero blocks, a block device as the source and as the target,
 * and an image whose size is not a multiple of the block size.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOCK_SIZE, GIB } from '../../../src/ebs/constants.js';
import { runCli } from '../../helpers/cli.js';
import { ebsClient, listAllBlocks, startServer, type TestServer } from '../../helpers/server.js';
import { makeBtrfsImage, makeExt4Image, makeGptImage, makeTree, makeXfsImage, run } from '../../helpers/images.js';
import { assertSameImage, exportCli, importCli, loopAttach, loopDetach, nonZeroBlocks } from './common.js';

let server: TestServer;
let work: string;
let src: string;
const client = () => ebsClient(server.endpoint);

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ebsmount-e2e-transfer-'));
  src = join(work, 'tree');
  await makeTree(src, { files: 2000, seed: 42 });
  server = await startServer();
});

after(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function roundTrip(image: string): Promise<{ id: string; exported: string }> {
  const id = await importCli(server.endpoint, image);
  const exported = `${image}.export`;
  await exportCli(server.endpoint, id, exported);
  await assertSameImage(image, exported);
  // The snapshot holds exactly the image's non-zero blocks, and the export allocates no more.
  const nz = await nonZeroBlocks(image);
  const listed = await listAllBlocks(client(), id);
  assert.deepEqual(listed.indexes, nz, 'snapshot blocks = non-zero image blocks');
  const allocated = (await stat(exported)).blocks * 512;
  assert.ok(allocated <= nz.length * BLOCK_SIZE + 256 * 1024, `export allocates ${allocated} bytes for ${nz.length} data blocks`);
  assert.ok(allocated < GIB / 2, 'holes are kept');
  return { id, exported };
}

describe('filesystem images', () => {
  test('ext4 (mkfs.ext4 -d): byte-identical, sparse, fsck-clean', async () => {
    const image = join(work, 'ext4.img');
    await makeExt4Image(image, 128, src);
    const { exported } = await roundTrip(image);
    await run('e2fsck', ['-f', '-n', exported]);
  });

  test('xfs: byte-identical, sparse, xfs_repair -n clean', async () => {
    const image = join(work, 'xfs.img');
    await makeXfsImage(image, 320, src);
    const { exported } = await roundTrip(image);
    await run('xfs_repair', ['-n', '-f', exported]);
  });

  test('btrfs: byte-identical, sparse, btrfs check clean', async () => {
    const image = join(work, 'btrfs.img');
    await makeBtrfsImage(image, 160, src);
    const { exported } = await roundTrip(image);
    await run('btrfs', ['check', '--readonly', exported]);
  });

  test('GPT disk with ext4, xfs and btrfs partitions: byte-identical, same partition table', async () => {
    const image = join(work, 'gpt.img');
    const { partitions } = await makeGptImage(image, [
      { fs: 'ext4', sizeMiB: 64, srcDir: src },
      { fs: 'xfs', sizeMiB: 300, srcDir: src },
      { fs: 'btrfs', sizeMiB: 128, srcDir: src },
    ]);
    const { exported } = await roundTrip(image);
    const table = (await run('sgdisk', ['-p', exported])).stdout;
    for (const [i, p] of partitions.entries()) {
      assert.match(table, new RegExp(`^\\s+${i + 1}\\s+${p.start / 512}\\s+${(p.start + p.size) / 512 - 1}\\s`, 'm'));
    }
    await rm(image);
    await rm(exported);
  });
});

describe('other sources and targets', () => {
  test('an image whose size is not a multiple of 512 KiB: tail padded, bytes identical', async () => {
    const image = join(work, 'odd.img');
    await writeFile(image, randomBytes(3 * 1024 * 1024 + 1234));
    const { exported } = await roundTrip(image);
    assert.equal((await stat(exported)).size, GIB);
  });

  test('import from a block device (read-only loop device)', async () => {
    const image = join(work, 'ext4.img');
    let dev: string | undefined;
    try {
      dev = await loopAttach(image, true);
      const id = await importCli(server.endpoint, dev);
      const exported = join(work, 'from-device.img');
      await exportCli(server.endpoint, id, exported);
      await assertSameImage(image, exported);
      await rm(exported);
    } finally {
      await loopDetach(dev);
    }
  });

  test('export onto a block device: unlisted ranges are zeroed, not left as they were', async () => {
    const image = join(work, 'ext4.img');
    const id = await importCli(server.endpoint, image);
    const backing = join(work, 'device-backing.img');
    // A 1 GiB device full of stale data where the snapshot has holes.
    const fh = await open(backing, 'w');
    try {
      await fh.truncate(GIB);
      const junk = Buffer.alloc(4 * 1024 * 1024, 0xa5);
      for (const off of [0, 100 * 1024 * 1024, 700 * 1024 * 1024, GIB - junk.length]) await fh.write(junk, 0, junk.length, off);
    } finally {
      await fh.close();
    }
    let dev: string | undefined;
    try {
      dev = await loopAttach(backing, false);
      await exportCli(server.endpoint, id, dev);
      await assertSameImage(image, dev, GIB);
    } finally {
      await loopDetach(dev);
      await rm(backing, { force: true });
    }
  });

  test('a block device smaller than the snapshot is refused', async () => {
    const image = join(work, 'ext4.img');
    const id = await importCli(server.endpoint, image);
    const backing = join(work, 'small-backing.img');
    await writeFile(backing, '');
    await truncate(backing, 64 * 1024 * 1024);
    let dev: string | undefined;
    try {
      dev = await loopAttach(backing, false);
      const r = await runCli(['export', id, dev, '--endpoint', server.endpoint]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^ebsmount: block device \/dev\/loop\d+ holds 67108864 bytes, less than the snapshot's 1 GiB\n$/);
    } finally {
      await loopDetach(dev);
      await rm(backing, { force: true });
    }
  });
});
