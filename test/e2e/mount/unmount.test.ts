/**
 * E2E: the life of a background mount. `ebsmount mount` returns once the mount is live and says
 * where it logs; `ebsmount unmount`, plain `umount`, `fusermount -u` and SIGTERM each end it:
 * the daemon process is gone, its registry entry is gone, nothing is mounted. A busy mount is
 * refused (and stays usable); a dead daemon's mount is cleaned up by `ebsmount unmount`. A
 * writable mount commits on `ebsmount unmount` (the child id on stdout) and on a plain umount
 * (the id in the log), and `--discard` creates nothing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.js';
import { seededBytes } from '../../helpers/images.js';
import { runCli } from '../../helpers/cli.js';
import {
  cleanup, cleanupAll, importImage, isMounted, loopAttach, loopDetach, mountEntry, mountSnapshot, registryEntriesFor, sh, tempDir, waitGone,
  type MountedSnapshot,
} from '../../helpers/mounts.js';

const MiB = 1024 * 1024;

describe('mount lifecycle and unmount', { timeout: 180_000 }, () => {
  let server: TestServer;
  let work: string;
  let snap: string;
  let data: Buffer;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-unmount-');
    const image = join(work, 'img');
    data = seededBytes(9, 'unmount', 4 * MiB);
    const fh = await open(image, 'w');
    try {
      await fh.truncate(64 * MiB);
      await fh.write(data, 0, data.length, 0);
    } finally {
      await fh.close();
    }
    snap = await importImage(server.endpoint, image);
  });
  after(() => cleanupAll());

  async function assertEnded(m: MountedSnapshot, what: string): Promise<void> {
    assert.ok(await waitGone(m.pid, 10_000), `${what}: the daemon ${m.pid} still runs`);
    assert.equal(await isMounted(m.mountpoint), false, `${what}: still mounted`);
    assert.deepEqual(await registryEntriesFor(m.mountpoint), [], `${what}: registry entry left`);
  }

  test('mount returns once live, names its log; ebsmount unmount ends the daemon', async () => {
    const log = join(work, 'a.log');
    const m = await mountSnapshot(server.endpoint, snap, { args: ['--log-file', log] });
    assert.equal(m.result.stdout.trim(), `mounted ${snap} at ${m.mountpoint} (log: ${log})`);
    assert.equal((await stat(m.imagePath)).size, 1024 ** 3);
    const head = Buffer.alloc(4096);
    const fh = await open(m.imagePath, 'r');
    await fh.read(head, 0, 4096, 0);
    await fh.close();
    assert.ok(head.equals(data.subarray(0, 4096)));
    assert.match(await readFile(log, 'utf8'), /"msg":"mounted"/);
    const r = await m.unmount();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /unmounted/);
    assert.ok(await waitGone(m.pid, 0), 'unmount returned before the daemon ended');
    await assertEnded(m, 'ebsmount unmount');
  });

  test('the default log goes under the state directory', async () => {
    const state = join(work, 'state');
    const m = await mountSnapshot(server.endpoint, snap, { env: { XDG_STATE_HOME: state } });
    const log = /\(log: (.*)\)$/.exec(m.result.stdout.trim())?.[1] ?? '';
    assert.ok(log.startsWith(join(state, 'ebsmount', 'logs', `${snap}-`)), log);
    assert.ok((await stat(log)).size > 0);
    assert.equal((await m.unmount()).code, 0);
    await assertEnded(m, 'unmount');
  });

  for (const [how, cmd] of [['umount', ['umount']], ['fusermount -u', ['fusermount', '-u']]] as const) {
    test(`plain ${how} ends the daemon`, async () => {
      const m = await mountSnapshot(server.endpoint, snap);
      const r = await sh(cmd[0], [...cmd.slice(1), m.mountpoint]);
      assert.equal(r.code, 0, r.stderr);
      await assertEnded(m, how);
    });
  }

  test('SIGTERM unmounts and ends the daemon', async () => {
    const m = await mountSnapshot(server.endpoint, snap);
    process.kill(m.pid, 'SIGTERM');
    await assertEnded(m, 'SIGTERM');
  });

  test('a busy mount is refused and stays usable; unmount works once released', async () => {
    const m = await mountSnapshot(server.endpoint, snap);
    const dev = await loopAttach(m.imagePath, { readOnly: true });
    const r = await m.unmount();
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /is busy/);
    assert.ok(await isMounted(m.mountpoint));
    const buf = Buffer.alloc(4096);
    const fh = await open(dev, 'r');
    await fh.read(buf, 0, 4096, 4096);
    await fh.close();
    assert.ok(buf.equals(data.subarray(4096, 8192)), 'the mount no longer serves after a refused unmount');
    await loopDetach(dev);
    const r2 = await m.unmount();
    assert.equal(r2.code, 0, r2.stderr);
    await assertEnded(m, 'unmount after release');
  });

  test('ebsmount unmount cleans up after a daemon that died', async () => {
    const m = await mountSnapshot(server.endpoint, snap);
    process.kill(m.pid, 'SIGKILL');
    assert.ok(await waitGone(m.pid, 5_000));
    assert.equal((await registryEntriesFor(m.mountpoint)).length, 1, 'the stale entry');
    const r = await m.unmount();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /daemon was not running/);
    assert.equal(await isMounted(m.mountpoint), false);
    assert.deepEqual(await registryEntriesFor(m.mountpoint), []);
  });

  test('--allow-other: a one-line warning; the kernel shows allow_other and another user may read the image', async () => {
    const m = await mountSnapshot(server.endpoint, snap, { args: ['--allow-other'] });
    // It says, in one line, what it exposes.
    assert.equal(m.result.stderr, `ebsmount: warning: --allow-other: every user of this machine can read the whole disk of ${snap} under ${m.mountpoint} (image files mode 0444; writes stay yours)\n`);
    assert.equal((await stat(m.imagePath)).mode & 0o777, 0o444);
    assert.equal((await stat(m.mountpoint)).mode & 0o777, 0o555);
    assert.ok((await mountEntry(m.mountpoint))?.superOptions.includes('allow_other'));
    // the temp dir above the mountpoint is 0700: open the way for 'nobody'
    await sh('chmod', ['755', dirname(m.mountpoint)]);
    const r = await sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'head', '-c', '4096', m.imagePath], {});
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Buffer.from(r.stdout, 'latin1').length > 0, true);
    const cwd = await sh('readlink', [`/proc/${m.pid}/cwd`]);
    assert.equal(cwd.stdout.trim(), '/', 'the daemon keeps the caller\'s directory busy');
    assert.equal((await m.unmount()).code, 0);
    await assertEnded(m, 'allow-other');
  });

  test('unmount and status of something that is not an ebsmount mount fail clearly', async () => {
    const dir = join(work, 'plain');
    await mkdir(dir);
    const u = await runCli(['unmount', dir]);
    assert.notEqual(u.code, 0);
    assert.match(u.stderr, /is not mounted/);
    const s = await runCli(['status', dir]);
    assert.notEqual(s.code, 0);
    assert.match(s.stderr, /no ebsmount mount at/);
  });

  test('writable: ebsmount unmount prints the child id; a plain umount commits too; --discard creates nothing', async () => {
    const patch = Buffer.from('hello from a writable mount');
    const w = await mountSnapshot(server.endpoint, snap, { args: ['--writable'] });
    assert.equal((await stat(w.imagePath)).mode & 0o777, 0o600);
    const fh = await open(w.imagePath, 'r+');
    await fh.write(patch, 0, patch.length, MiB + 3);
    await fh.sync();
    await fh.close();
    const r = await w.unmount();
    assert.equal(r.code, 0, r.stderr);
    const child = r.stdout.trim();
    assert.match(child, /^snap-[0-9a-f]{17}$/);
    await assertEnded(w, 'writable unmount');

    const c = await mountSnapshot(server.endpoint, child);
    const got = Buffer.alloc(patch.length);
    const rf = await open(c.imagePath, 'r');
    await rf.read(got, 0, got.length, MiB + 3);
    await rf.close();
    assert.ok(got.equals(patch));
    assert.equal((await c.unmount()).code, 0);

    const log = join(work, 'w2.log');
    const w2 = await mountSnapshot(server.endpoint, snap, { args: ['--writable', '--log-file', log] });
    const fh2 = await open(w2.imagePath, 'r+');
    await fh2.write(patch, 0, patch.length, 0);
    await fh2.close();
    assert.equal((await sh('umount', [w2.mountpoint])).code, 0);
    await assertEnded(w2, 'writable umount');
    assert.match(await readFile(log, 'utf8'), /committed 1 block as snap-[0-9a-f]{17}/);

    const w3 = await mountSnapshot(server.endpoint, snap, { args: ['--writable'] });
    const fh3 = await open(w3.imagePath, 'r+');
    await fh3.write(patch, 0, patch.length, 0);
    await fh3.close();
    const r3 = await w3.unmount(['--discard']);
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal(r3.stdout, '');
    assert.match(r3.stderr, /discarded.*no snapshot created/);
    await assertEnded(w3, 'discard');

    const w4 = await mountSnapshot(server.endpoint, snap, { args: ['--writable'] });
    const r4 = await w4.unmount();
    assert.equal(r4.code, 0, r4.stderr);
    assert.equal(r4.stdout, '');
    assert.match(r4.stderr, /no writes, no snapshot created/);
  });
});
