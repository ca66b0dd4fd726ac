/**
 * E2E: mount.ebsmount under the real mount(8): an fstab line (read from a test fstab with
 * `mount -T FILE DIR`, so /etc/fstab is untouched) `SNAP DIR fuse.ebsmount ro,cache-size=64M,
 * endpoint=URL,_netdev 0 0` mounts the snapshot with that cache size; `umount DIR` ends it.
 * mount(8) finds the helper as /sbin/mount.fuse.ebsmount, a symlink to bin/mount.ebsmount made for
 * the test (and removed after, unless it was there before).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeExt4Image, makeTree } from '../../helpers/images.js';
import { cleanup, cleanupAll, importImage, isMounted, sh, statusOf, tempDir, waitGone } from '../../helpers/mounts.js';
import { startServer, type TestServer } from '../../helpers/server.js';

const HELPER = '/sbin/mount.fuse.ebsmount';
/** bin/mount.ebsmount of this checkout (this file runs from dist/test/e2e/mount). */
const BIN = fileURLToPath(new URL('../../../../bin/mount.ebsmount', import.meta.url));

describe('mount.ebsmount (fstab helper)', { timeout: 300_000 }, () => {
  let server: TestServer;
  let work: string;
  let snap: string;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-fstab-');
    await makeTree(join(work, 'src'), { files: 20, seed: 3 });
    await makeExt4Image(join(work, 'disk.img'), 64, join(work, 'src'));
    snap = await importImage(server.endpoint, join(work, 'disk.img'));
    if (!existsSync(HELPER)) {
      symlinkSync(BIN, HELPER);
      cleanup.add(`rm ${HELPER}`, () => unlinkSync(HELPER));
    }
  });
  after(() => cleanupAll());

  test('an fstab line mounts with its options; umount ends the daemon', async () => {
    const dir = join(work, 'mnt');
    await sh('mkdir', [dir]);
    const fstab = join(work, 'fstab');
    writeFileSync(fstab, `${snap}  ${dir}  fuse.ebsmount  ro,cache-size=64M,endpoint=${server.endpoint},_netdev  0 0\n`);
    cleanup.add(`umount ${dir}`, async () => {
      if (await isMounted(dir)) await sh('umount', ['-l', dir]);
    });
    const r = await sh('mount', ['-T', fstab, dir], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await isMounted(dir));
    assert.deepEqual(readdirSync(dir), [`${snap}.img`]);
    const st = await statusOf(dir);
    assert.equal(st.cacheSizeBytes, 64 * 1024 * 1024);
    assert.equal(st.writable, false);
    const u = await sh('umount', [dir]);
    assert.equal(u.code, 0, u.stderr);
    assert.ok(await waitGone(st.pid, 15_000), 'the daemon ends after umount');
  });

  test('an unknown option fails the mount with the helper naming it', async () => {
    const dir = join(work, 'mnt2');
    await sh('mkdir', [dir]);
    const r = await sh('mount', ['-t', 'fuse.ebsmount', '-o', `ro,bogus=1,endpoint=${server.endpoint}`, snap, dir]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /mount\.ebsmount: unknown mount option 'bogus=1'/);
    assert.equal(await isMounted(dir), false);
  });
});
