/**
 * E2E: an ext4 image holding a known tree (thousands of small files, large files, a sparse file),
 * imported into the real server, mounted with ebsmount, loop-attached read-only and mounted
 * `ro,noload`: every file's SHA-256 equals the source's. Also the image file's attributes
 * (size = VolumeSize GiB, mode 0400, owner, st_blocks = allocated blocks × 1024) and the options
 * the kernel shows for the mount.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.js';
import { makeExt4Image, makeTree, treeManifest } from '../../helpers/images.js';
import { cleanup, cleanupAll, importImage, loopAttach, mountDev, mountEntry, mountSnapshot, tempDir, type MountedSnapshot } from '../../helpers/mounts.js';

describe('ext4 tree through ebsmount', { timeout: 180_000 }, () => {
  let server: TestServer;
  let work: string;
  let src: string;
  let snap: string;
  let m: MountedSnapshot;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-ext4-');
    src = join(work, 'src');
    const info = await makeTree(src, { files: 3000, seed: 7 });
    assert.ok(info.files > 3000);
    const image = join(work, 'ext4.img');
    await makeExt4Image(image, 160, src);
    snap = await importImage(server.endpoint, image);
    m = await mountSnapshot(server.endpoint, snap);
  });
  after(() => cleanupAll());

  test('the image file has the volume size, mode 0400, our uid, and st_blocks of the allocated blocks', async () => {
    const st = await stat(m.imagePath);
    assert.equal(st.size, 1024 ** 3);
    assert.equal(st.mode & 0o777, 0o400);
    assert.ok(st.isFile());
    assert.equal(st.uid, process.getuid!());
    assert.equal(st.gid, process.getgid!());
    // wait for the background count to finish, then st_blocks must be exactly count × 1024
    let status = await m.status();
    for (let i = 0; i < 100 && !status.allocatedBlocksFinal; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await m.status();
    }
    assert.ok(status.allocatedBlocksFinal);
    assert.ok(status.allocatedBlocks > 0 && status.allocatedBlocks < 2048);
    assert.equal((await stat(m.imagePath)).blocks, status.allocatedBlocks * 1024);
    const dir = await stat(m.mountpoint);
    assert.equal(dir.mode & 0o777, 0o500);
  });

  test('the kernel shows the mount read-only with our options', async () => {
    const e = await mountEntry(m.mountpoint);
    assert.ok(e);
    assert.equal(e.fstype, 'fuse.ebsmount');
    assert.equal(e.source, `ebsmount:${snap}`);
    assert.ok(e.mountOptions.includes('ro'));
    for (const o of ['max_read=131072', 'default_permissions']) assert.ok(e.superOptions.includes(o), o);
    assert.ok(!e.superOptions.includes('allow_other'));
  });

  test('every file of the loop-mounted ext4 (ro,noload) equals the source', async () => {
    const dev = await loopAttach(m.imagePath, { readOnly: true });
    const fsDir = join(work, 'fs');
    await mkdir(fsDir);
    await mountDev(dev, fsDir, { type: 'ext4', options: 'ro,noload' });
    const want = await treeManifest(src);
    const got = await treeManifest(fsDir);
    assert.ok(want.size > 3000);
    assert.equal(got.size, want.size);
    for (const [path, sha] of want) assert.equal(got.get(path), sha, path);
  });
});
