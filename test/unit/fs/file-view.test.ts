/**
 * FileView windows and the FuseAdapter serving several views: reads and writes land at the
 * view's offset in its volume and never outside its window; listing, sizes and modes per view.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FuseAdapter } from '../../../src/fs/fuse-adapter.js';
import { viewRead, viewWrite, wholeVolumeView, type FileView } from '../../../src/fs/file-view.js';
import type { VolumeFile } from '../../../src/fs/volume-file.js';

/** A VolumeFile over a Buffer. */
function memVolume(size: number, writable: boolean): { volume: VolumeFile; bytes: Buffer } {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = i % 251;
  const volume = {
    sizeBytes: size,
    writable,
    allocatedBlocks: () => 1,
    read: async (buf: Buffer, len: number, pos: number) => {
      const n = Math.max(0, Math.min(len, size - pos));
      bytes.copy(buf, 0, pos, pos + n);
      return n;
    },
    write: async (buf: Buffer, len: number, pos: number) => {
      buf.copy(bytes, pos, 0, len);
      return len;
    },
    flush: async () => undefined,
  } as unknown as VolumeFile;
  return { volume, bytes };
}

function part(volume: VolumeFile, offset: number, length: number, writable: boolean): FileView {
  return { name: `snap-p1.img`, volumeId: 'snap-1', volume, offset, length, writable, partition: 1 };
}

function call<T extends unknown[]>(fn: ((...a: [...T, (...r: any[]) => void]) => void) | undefined, ...args: T): Promise<any[]> {
  return new Promise((resolve) => fn!(...args, (...r: any[]) => resolve(r)));
}

describe('FileView', () => {
  test('reads come from offset + pos, are short at the window end, 0 past it', async () => {
    const { volume, bytes } = memVolume(10_000, false);
    const v = part(volume, 1000, 3000, false);
    const buf = Buffer.alloc(500);
    assert.equal(await viewRead(v, buf, 500, 0), 500);
    assert.deepEqual(buf, bytes.subarray(1000, 1500));
    assert.equal(await viewRead(v, buf, 500, 2800), 200);
    assert.deepEqual(buf.subarray(0, 200), bytes.subarray(3800, 4000));
    assert.equal(await viewRead(v, buf, 500, 3000), 0);
  });

  test('writes land at offset + pos, stop at the window end, ENOSPC past it, EROFS read-only', async () => {
    const { volume, bytes } = memVolume(10_000, true);
    const before = Buffer.from(bytes);
    const v = part(volume, 1000, 3000, true);
    assert.equal(await viewWrite(v, Buffer.alloc(100, 0xee), 100, 50), 100);
    assert.ok(bytes.subarray(1050, 1150).every((b) => b === 0xee));
    assert.equal(await viewWrite(v, Buffer.alloc(100, 0xdd), 100, 2950), 50);
    assert.ok(bytes.subarray(3950, 4000).every((b) => b === 0xdd));
    assert.deepEqual(bytes.subarray(4000), before.subarray(4000), 'nothing written past the window');
    await assert.rejects(viewWrite(v, Buffer.alloc(1), 1, 3000), { code: 'ENOSPC' });
    await assert.rejects(viewWrite({ ...v, writable: false }, Buffer.alloc(1), 1, 0), { code: 'EROFS' });
  });
});

describe('FuseAdapter with several views', () => {
  test('lists every view; getattr sizes; read by path reads that window; write EROFS per view', async () => {
    const { volume, bytes } = memVolume(1 << 20, false);
    const views = [wholeVolumeView(volume, 'snap-1'), part(volume, 4096, 65536, false)];
    const a = new FuseAdapter({ file: volume, snapshotId: 'snap-1', views, allowOther: false, uid: 0, gid: 0 });
    const ops = a.ops();
    const [err, names] = await call(ops.readdir, '/');
    assert.equal(err, 0);
    assert.deepEqual(names, ['snap-1.img', 'snap-p1.img']);
    assert.equal((await call(ops.getattr, '/snap-1.img'))[1].size, 1 << 20);
    assert.equal((await call(ops.getattr, '/snap-p1.img'))[1].size, 65536);
    assert.equal((await call(ops.getattr, '/snap-p1.img'))[1].blocks, 128);
    assert.equal((await call(ops.getattr, '/nope.img'))[0], -2);
    const buf = Buffer.alloc(1000);
    const [n] = await call(ops.read, '/snap-p1.img', 1, buf, 1000, 10);
    assert.equal(n, 1000);
    assert.deepEqual(buf, bytes.subarray(4106, 5106));
    assert.equal((await call(ops.open, '/snap-p1.img', 2))[0], -30);
    assert.equal(a.fileName, 'snap-1.img');
    assert.throws(() => new FuseAdapter({ file: volume, snapshotId: 'snap-1', views: [views[0]!, views[0]!], allowOther: false, uid: 0, gid: 0 }), /unique/);
  });
});
