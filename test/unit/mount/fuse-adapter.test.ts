/**
 * FuseAdapter ops called directly (no kernel): attributes, directory listing, open flags, the
 * errno mapping, EROFS on read-only mounts, truncate rules, flush, and that no op throws.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FuseAdapter, errnoOf } from '../../../src/fs/fuse-adapter.js';
import { IoError } from '../../../src/fs/io-error.js';
import type { VolumeFile } from '../../../src/fs/volume-file.js';

const SNAP = 'snap-0123456789abcdef0';
const IMG = `/${SNAP}.img`;

function fakeFile(opts: { writable?: boolean; read?: VolumeFile['read']; flush?: () => Promise<void> } = {}) {
  const calls: string[] = [];
  const file = {
    sizeBytes: 4 * 1024 ** 3,
    writable: opts.writable ?? false,
    allocatedBlocks: () => 7,
    read: opts.read ?? (async (buf: Buffer, len: number) => {
      calls.push('read');
      buf.fill(1, 0, len);
      return len;
    }),
    write: async (_buf: Buffer, len: number) => {
      calls.push('write');
      return len;
    },
    flush: opts.flush ?? (async () => {
      calls.push('flush');
    }),
  } as unknown as VolumeFile;
  return { file, calls };
}

function call<T extends unknown[]>(fn: ((...a: [...T, (...r: any[]) => void]) => void) | undefined, ...args: T): Promise<any[]> {
  return new Promise((resolve) => fn!(...args, (...r: any[]) => resolve(r)));
}

describe('FuseAdapter', () => {
  test('attributes of the directory and the image', async () => {
    const ro = new FuseAdapter({ file: fakeFile().file, snapshotId: SNAP, allowOther: false, uid: 1000, gid: 100 }).ops();
    const [e1, st] = await call(ro.getattr, IMG);
    assert.equal(e1, 0);
    assert.equal(st.mode, 0o100400);
    assert.equal(st.size, 4 * 1024 ** 3);
    assert.equal(st.blocks, 7 * 1024);
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 100);
    const [, dir] = await call(ro.getattr, '/');
    assert.equal(dir.mode, 0o040500);
    assert.deepEqual((await call(ro.getattr, '/other'))[0], -2);
    const [e2, names] = await call(ro.readdir, '/');
    assert.equal(e2, 0);
    assert.deepEqual(names, [`${SNAP}.img`]);

    const rw = new FuseAdapter({ file: fakeFile({ writable: true }).file, snapshotId: SNAP, allowOther: true, uid: 0, gid: 0 }).ops();
    assert.equal((await call(rw.getattr, IMG))[1].mode, 0o100644);
    assert.equal((await call(rw.getattr, '/'))[1].mode, 0o040755);
    const roOther = new FuseAdapter({ file: fakeFile().file, snapshotId: SNAP, allowOther: true, uid: 0, gid: 0 }).ops();
    assert.equal((await call(roOther.getattr, IMG))[1].mode, 0o100444);
    assert.equal((await call(roOther.getattr, '/'))[1].mode, 0o040555);
  });

  test('read-only: open for writing, write and truncate are EROFS; reads work', async () => {
    const { file, calls } = fakeFile();
    const a = new FuseAdapter({ file, snapshotId: SNAP, allowOther: false, uid: 0, gid: 0 });
    const ops = a.ops();
    assert.equal((await call(ops.open, IMG, 1))[0], -30); // O_WRONLY
    assert.equal((await call(ops.open, IMG, 2))[0], -30); // O_RDWR
    const [e, fd] = await call(ops.open, IMG, 0);
    assert.equal(e, 0);
    assert.ok(fd > 0);
    assert.equal(a.openHandles, 1);
    const buf = Buffer.alloc(10);
    assert.deepEqual(await call(ops.read, IMG, fd, buf, 10, 0), [10]);
    assert.ok(buf.equals(Buffer.alloc(10, 1)));
    assert.deepEqual(await call(ops.write, IMG, fd, buf, 10, 0), [-30]);
    assert.deepEqual(await call(ops.truncate, IMG, 0), [-30]);
    assert.deepEqual(await call(ops.ftruncate, IMG, fd, 4 * 1024 ** 3), [-30]);
    assert.deepEqual(await call(ops.flush, IMG, fd), [0]);
    assert.ok(!calls.includes('flush'), 'read-only flush needs no VolumeFile.flush');
    assert.deepEqual(await call(ops.release, IMG, fd), [0]);
    assert.equal(a.openHandles, 0);
    assert.equal((await call(ops.open, '/nope', 0))[0], -2);
    assert.equal((await call(ops.open, '/', 0))[0], -21);
  });

  test('writable: writes, truncate only to the same size, flush and fsync reach the file', async () => {
    const { file, calls } = fakeFile({ writable: true });
    const ops = new FuseAdapter({ file, snapshotId: SNAP, allowOther: false, uid: 0, gid: 0 }).ops();
    assert.equal((await call(ops.open, IMG, 2))[0], 0);
    assert.deepEqual(await call(ops.write, IMG, 1, Buffer.alloc(5), 5, 3), [5]);
    assert.deepEqual(await call(ops.truncate, IMG, 4 * 1024 ** 3), [0]);
    assert.deepEqual(await call(ops.truncate, IMG, 0), [-22]);
    assert.deepEqual(await call(ops.flush, IMG, 1), [0]);
    assert.deepEqual(await call(ops.fsync, IMG, 0, 1), [0]);
    assert.deepEqual(calls, ['write', 'flush', 'flush']);
  });

  test('errors map to errno and never escape', async () => {
    assert.equal(errnoOf(new IoError('EIO', 'x')), -5);
    assert.equal(errnoOf(new IoError('ENOSPC', 'x')), -28);
    assert.equal(errnoOf(new IoError('EROFS', 'x')), -30);
    assert.equal(errnoOf(new IoError('EINVAL', 'x')), -22);
    assert.equal(errnoOf(new Error('boom')), -5);
    const failing = fakeFile({ read: async () => Promise.reject(new IoError('EIO', 'block failed')), flush: async () => Promise.reject(new Error('disk')) });
    const ops = new FuseAdapter({ file: failing.file, snapshotId: SNAP, allowOther: false, uid: 0, gid: 0 }).ops();
    assert.deepEqual(await call(ops.read, IMG, 1, Buffer.alloc(4), 4, 0), [-5]);
    const throwing = fakeFile({ read: (() => { throw new Error('sync bug'); }) as unknown as VolumeFile['read'] });
    const ops2 = new FuseAdapter({ file: throwing.file, snapshotId: SNAP, allowOther: false, uid: 0, gid: 0 }).ops();
    assert.deepEqual(await call(ops2.read, IMG, 1, Buffer.alloc(4), 4, 0), [-5]);
    const w = fakeFile({ writable: true, flush: async () => Promise.reject(new Error('disk')) });
    const ops3 = new FuseAdapter({ file: w.file, snapshotId: SNAP, allowOther: false, uid: 0, gid: 0 }).ops();
    assert.deepEqual(await call(ops3.fsync, IMG, 0, 1), [-5]);
  });
});
