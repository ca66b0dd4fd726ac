/**
 * MountDaemon in-process over the in-memory EBS double, with real FUSE: mount, read through the
 * kernel (async I/O only: this process is the FUSE server), status and unmount over the control
 * socket, external umount noticed, EBS errors fail before anything is mounted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { MountDaemon } from '../../../src/mount/daemon.js';
import { FuseAdapter, mountFuse, releaseFuse } from '../../../src/fs/fuse-adapter.js';
import type { VolumeFile } from '../../../src/fs/volume-file.js';
import { MountRegistry } from '../../../src/mount/registry.js';
import { Journal } from '../../../src/writeback/journal.js';
import { controlRequest } from '../../../src/mount/control-client.js';
import { findMount } from '../../../src/mount/mountinfo.js';
import type { MountConfig } from '../../../src/mount/mount-options.js';
import { silentLogger } from '../../../src/util/log.js';
import { EbsError } from '../../../src/ebs/errors.js';
import { toUserError } from '../../../src/errors/describe-error.js';
import { randomBlocks } from '../store/fixtures.js';

const exec = promisify(execFile);

function config(snapshotId: string, mountpoint: string, over: Partial<MountConfig> = {}): MountConfig {
  return {
    snapshotId, mountpoint, foreground: true, cacheSizeBytes: 64 * 1024 * 1024, readAheadBytes: 4 * 1024 * 1024,
    maxConcurrency: 8, requestRate: 1000, allowOther: false, logFile: null, logLevel: 'silent', writable: false,
    tags: [], uploadConcurrency: 4, discard: false, ...over,
  };
}

describe('MountDaemon (in-process, real FUSE)', () => {
  let root: string;
  const daemons: MountDaemon[] = [];
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ebsmount-daemon-'));
  });
  after(async () => {
    for (const d of daemons) await d.shutdown('signal', { allowLazy: true }).catch(() => undefined);
    await exec('sh', ['-c', `grep -o ' ${root}[^ ]*' /proc/self/mountinfo | xargs -r -n1 umount -l`]).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  });

  async function start(api: MemoryEbsApi, snap: string, name: string, over: Partial<MountConfig> = {}) {
    const mnt = join(root, name);
    await exec('mkdir', ['-p', mnt]);
    const registry = new MountRegistry(join(root, 'run'));
    const d = await MountDaemon.start(config(snap, mnt, over), { api, logger: silentLogger, registry, logFile: null });
    daemons.push(d);
    return { d, mnt, registry };
  }

  test('serves the image, answers status, unmounts over the socket and ends', async () => {
    const api = new MemoryEbsApi();
    const blocks = randomBlocks([0, 3, 2047]);
    const snap = api.createCompletedSnapshot(blocks, 1);
    // No partition files: reading the table would fetch block 0, and this test counts requests.
    const { d, mnt, registry } = await start(api, snap, 'a', { partitions: false });
    const img = join(mnt, `${snap}.img`);

    assert.deepEqual(await readdir(mnt), [`${snap}.img`]);
    const st = await stat(img);
    assert.equal(st.size, 1024 ** 3);
    assert.equal(st.mode & 0o777, 0o400);
    assert.equal(st.uid, process.getuid!());

    const fh = await open(img, 'r');
    const buf = Buffer.alloc(BLOCK_SIZE + 100);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 3 * BLOCK_SIZE - 50);
    await fh.close();
    assert.equal(bytesRead, buf.length);
    assert.deepEqual(buf.subarray(0, 50), Buffer.alloc(50));
    assert.deepEqual(buf.subarray(50, 50 + BLOCK_SIZE), blocks.get(3));
    assert.deepEqual(buf.subarray(50 + BLOCK_SIZE), Buffer.alloc(50));

    // writes are refused: open for writing fails with EROFS
    await assert.rejects(open(img, 'r+'), { code: 'EROFS' });

    const entries = await registry.list();
    assert.equal(entries.length, 1);
    assert.equal(entries[0].mountpoint, mnt);
    const status = await controlRequest(entries[0].socket, { op: 'status' });
    assert.ok(status.ok && status.status);
    assert.equal(status.status!.snapshotId, snap);
    assert.equal(status.status!.volumeSizeGiB, 1);
    assert.ok(status.status!.stats['bytes.read'] >= buf.length);
    assert.equal(status.status!.stats['ebs.get.requests'], 1);

    const fin = await controlRequest(entries[0].socket, { op: 'unmount' });
    assert.ok(fin.ok);
    const done = await d.done;
    assert.equal(done.exitCode, 0);
    assert.equal(await findMount(mnt), undefined);
    assert.deepEqual(await registry.list(), []);
    assert.equal(await MountDaemon.fuseFds(), 0);
  });

  test('a writable mount that cannot set up its control socket unmounts without committing its journal', async () => {
    const api = new MemoryEbsApi();
    const snap = api.createCompletedSnapshot(randomBlocks([0, 1]), 1);
    // A journal with an acknowledged write, resumed by this mount.
    const journalDir = join(root, 'kept-journal');
    const j = await Journal.create(journalDir, { journalId: 'kept', parentSnapshotId: snap, volumeSizeGiB: 1 });
    await j.writeBlock(5, Buffer.alloc(BLOCK_SIZE, 7));
    await j.close();
    const mnt = join(root, 'nosocket');
    await exec('mkdir', ['-p', mnt]);
    await exec('touch', [join(root, 'not-a-dir')]);
    const registry = new MountRegistry(join(root, 'not-a-dir', 'run')); // cannot be created
    await assert.rejects(
      MountDaemon.start(config(snap, mnt, { writable: true, journalDir }), { api, logger: silentLogger, registry, logFile: null }),
    );
    assert.equal(await findMount(mnt), undefined, 'still mounted');
    assert.equal(api.counts('startSnapshot'), 0, 'a commit nobody asked for was started');
    const meta = await Journal.readMeta(journalDir);
    assert.equal(meta.state, 'open');
    const again = await Journal.open(journalDir, { readOnly: true });
    assert.deepEqual(again.dirtyIndexes(), [5]);
    await again.close();
  });

  test('a plain umount from outside ends the daemon', async () => {
    const api = new MemoryEbsApi();
    const snap = api.createCompletedSnapshot(randomBlocks([1]), 1);
    const { d, mnt, registry } = await start(api, snap, 'b');
    assert.ok(await findMount(mnt));
    await exec('umount', [mnt]);
    const done = await Promise.race([d.done, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5_000))]);
    assert.notEqual(done, 'timeout');
    assert.deepEqual(await registry.list(), []);
  });

  test('an unknown snapshot fails before anything is mounted', async () => {
    const api = new MemoryEbsApi();
    const mnt = join(root, 'c');
    await exec('mkdir', ['-p', mnt]);
    await assert.rejects(
      MountDaemon.start(config('snap-0123456789abcdef0', mnt), { api, logger: silentLogger, registry: new MountRegistry(join(root, 'run')), logFile: null }),
      { type: 'ResourceNotFoundException' },
    );
    assert.equal(await findMount(mnt), undefined);
  });

  test('an encrypted snapshot whose KMS key is denied fails with a message naming the key policy', async () => {
    const api = new MemoryEbsApi();
    const snap = api.createCompletedSnapshot(randomBlocks([0]), 1);
    api.injectFailure('listSnapshotBlocks', new EbsError('AccessDeniedException', 'not authorized to use the KMS key', { status: 403, reason: 'DEPENDENCY_ACCESS_DENIED' }), 10);
    const mnt = join(root, 'kms');
    await exec('mkdir', ['-p', mnt]);
    const err = await MountDaemon.start(config(snap, mnt), { api, logger: silentLogger, registry: new MountRegistry(join(root, 'run')), logFile: null }).then(
      () => assert.fail('mounted'),
      (e: unknown) => e,
    );
    assert.match(toUserError(err, { snapshotId: snap }).message, /access denied to the KMS key of snapshot .*key policy/);
    assert.equal(await findMount(mnt), undefined);
  });

  test('a busy mount refuses ebsmount unmount, and a signal unmounts it lazily', async () => {
    const api = new MemoryEbsApi();
    const snap = api.createCompletedSnapshot(randomBlocks([0]), 1);
    const { d, mnt } = await start(api, snap, 'd');
    // Another process holds the image open. (Never this one: a process that holds files open on
    // its own FUSE mount deadlocks when it spawns, since the child's exec closes them → FLUSH →
    // answered by the event loop, which waits inside spawn for that exec.)
    const holder = spawn('sh', ['-c', `exec 3<"${mnt}/${snap}.img"; echo open; exec sleep 60`], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise((r) => holder.stdout!.once('data', r));
      await assert.rejects(d.shutdown('unmount'), /busy/);
      assert.ok(await findMount(mnt), 'still mounted after a refused unmount');
      const ending = d.shutdown('signal', { allowLazy: true });
      // lazily detached at once, but the daemon waits for the open file
      for (let i = 0; i < 50 && (await findMount(mnt)); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await findMount(mnt), undefined);
      const early = await Promise.race([ending.then(() => 'ended'), new Promise((r) => setTimeout(() => r('waiting'), 500))]);
      assert.equal(early, 'waiting');
      holder.kill('SIGKILL');
      const r = await ending;
      assert.equal(r.exitCode, 0);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('FuseAdapter mounted writable (real FUSE)', () => {
  test('big_writes reaches the kernel: writes arrive in pieces larger than 4 KiB', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ebsmount-bigw-'));
    const mnt = join(root, 'm');
    await exec('mkdir', [mnt]);
    const sizes: number[] = [];
    const file = {
      sizeBytes: 1024 ** 3,
      writable: true,
      allocatedBlocks: () => 0,
      read: async (buf: Buffer, len: number) => (buf.fill(0, 0, len), len),
      write: async (_buf: Buffer, len: number) => (sizes.push(len), len),
      flush: async () => undefined,
    } as unknown as VolumeFile;
    const snap = 'snap-0123456789abcdef0';
    const adapter = new FuseAdapter({ file, snapshotId: snap, allowOther: false, uid: 0, gid: 0 });
    const m = await mountFuse(mnt, adapter, { snapshotId: snap, writable: true, allowOther: false });
    try {
      assert.match(m.optionString, /big_writes,max_write=1048576/);
      const e = await findMount(mnt);
      assert.ok(e?.mountOptions.includes('rw'));
      // Buffered writes on purpose: without big_writes the kernel sends those one 4 KiB page at a
      // time (direct I/O would not show the difference). A child process writes: never this one.
      const r = await exec('dd', ['if=/dev/zero', `of=${mnt}/${snap}.img`, 'bs=1M', 'count=4', 'conv=notrunc', 'status=none']);
      assert.equal(r.stderr, '');
      assert.equal(sizes.reduce((a, b) => a + b, 0), 4 * 1024 * 1024);
      assert.ok(Math.max(...sizes) >= 128 * 1024, `largest write ${Math.max(...sizes)} bytes`);
    } finally {
      await exec('umount', [mnt]).catch(() => exec('umount', ['-l', mnt]));
      for (let i = 0; i < 100 && (await MountDaemon.fuseFds()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
      releaseFuse(m);
      await rm(root, { recursive: true, force: true });
    }
  });
});
