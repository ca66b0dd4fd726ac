/**
 * E2E: a GPT-partitioned disk image with ext4, xfs and btrfs partitions, imported and mounted
 * with ebsmount; each partition attached read-only by offset (`losetup -r -o START --sizelimit
 * SIZE`: this kernel has no partition-table support) and mounted read-only (ext4 `ro,noload`,
 * xfs `ro,norecovery,nouuid`, btrfs `ro`): every file equals the source tree.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.js';
import { makeGptImage, makeTree, treeManifest, type PartitionInfo } from '../../helpers/images.js';
import { cleanup, cleanupAll, importImage, loopAttach, mountDev, mountSnapshot, tempDir, type MountedSnapshot } from '../../helpers/mounts.js';

const MOUNT_OPTIONS = { ext4: 'ro,noload', xfs: 'ro,norecovery,nouuid', btrfs: 'ro' } as const;

describe('GPT image with ext4, xfs and btrfs partitions', { timeout: 180_000 }, () => {
  let server: TestServer;
  let work: string;
  let src: string;
  let partitions: PartitionInfo[];
  let m: MountedSnapshot;
  let want: Map<string, string>;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-gpt-');
    src = join(work, 'src');
    await makeTree(src, { files: 400, seed: 11 });
    want = await treeManifest(src);
    const image = join(work, 'disk.img');
    ({ partitions } = await makeGptImage(image, [
      { fs: 'ext4', sizeMiB: 96, srcDir: src },
      { fs: 'xfs', sizeMiB: 320, srcDir: src },
      { fs: 'btrfs', sizeMiB: 160, srcDir: src },
    ]));
    {
      const id = await importImage(server.endpoint, image);
      m = await mountSnapshot(server.endpoint, id);
    }
  });
  after(() => cleanupAll());

  for (const fs of ['ext4', 'xfs', 'btrfs'] as const) {
    test(`${fs} partition attached by offset reads the same tree`, async () => {
      const p = partitions.find((x) => x.fs === fs)!;
      assert.ok(p.start % 512 === 0 && p.start > 0);
      const dev = await loopAttach(m.imagePath, { readOnly: true, offset: p.start, sizeLimit: p.size });
      const dir = join(work, `fs-${fs}`);
      await mkdir(dir);
      await mountDev(dev, dir, { type: fs, options: MOUNT_OPTIONS[fs] });
      const got = await treeManifest(dir);
      assert.equal(got.size, want.size);
      for (const [path, sha] of want) assert.equal(got.get(path), sha, `${fs}: ${path}`);
    });
  }
});
