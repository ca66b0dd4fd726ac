/**
 * The control socket (requests, progress, final answers, errors, unreachable daemons), the
 * registry of mounts (atomic entries, stale pids), and the preflight checks.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer } from '../../../src/mount/control-server.js';
import { controlRequest, ControlUnreachable } from '../../../src/mount/control-client.js';
import { MountRegistry } from '../../../src/mount/registry.js';
import { processIsAlive } from '../../../src/util/process.js';
import { spawnSync } from 'node:child_process';
import { checkFuse, checkMountpoint, checkSnapshotId } from '../../../src/mount/preflight.js';
import { parseReadyLine } from '../../../src/mount/readiness.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ebsmount-ctl-'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('control socket', () => {
  test('status, unmount with progress, handler errors, malformed requests', async () => {
    const path = join(dir, 'c.sock');
    const server = new ControlServer(path, async (req, send) => {
      if (req.op === 'status') return send({ ok: true, message: 'fine' });
      if (req.discard) throw new Error('cannot discard');
      send({ progress: { done: 1, total: 2 } });
      send({ progress: { done: 2, total: 2 } });
      send({ ok: true, snapshotId: 'snap-0123456789abcdef0', message: 'done' });
    });
    await server.listen();
    try {
      assert.deepEqual(await controlRequest(path, { op: 'status' }), { ok: true, message: 'fine' });
      const progress: [number, number][] = [];
      const fin = await controlRequest(path, { op: 'unmount' }, { onProgress: (d, t) => progress.push([d, t]) });
      assert.deepEqual(progress, [[1, 2], [2, 2]]);
      assert.deepEqual(fin, { ok: true, snapshotId: 'snap-0123456789abcdef0', message: 'done' });
      assert.deepEqual(await controlRequest(path, { op: 'unmount', discard: true }), { ok: false, error: 'cannot discard' });
      assert.deepEqual(await controlRequest(path, { op: 'bogus' } as never), { ok: false, error: 'malformed request' });
    } finally {
      await server.close();
    }
    await assert.rejects(controlRequest(path, { op: 'status' }), ControlUnreachable);
  });

  test('a handler that never answers gets a timeout on the client side', async () => {
    const path = join(dir, 'slow.sock');
    const server = new ControlServer(path, () => new Promise(() => undefined));
    await server.listen();
    try {
      await assert.rejects(controlRequest(path, { op: 'status' }, { timeoutMs: 200 }), /did not answer/);
    } finally {
      await server.close();
    }
  });
});

describe('registry', () => {
  test('register, find, list with liveness, remove stale entries', async () => {
    const reg = new MountRegistry(join(dir, 'run'));
    assert.deepEqual(await reg.list(), []);
    const base = { snapshotId: 'snap-0123456789abcdef0', log: null, writable: false, startedAt: new Date().toISOString() };
    await reg.register({ ...base, key: 'live', pid: process.pid, mountpoint: '/a', socket: reg.socketPath('live') });
    await reg.register({ ...base, key: 'dead', pid: 2 ** 22 + 12345, mountpoint: '/b', socket: reg.socketPath('dead') });
    await writeFile(join(dir, 'run', 'junk.json'), '{not json');
    const all = await reg.list();
    assert.deepEqual(all.map((e) => [e.key, e.alive]), [['dead', false], ['live', true]]);
    assert.equal((await reg.findByMountpoint('/a'))?.key, 'live');
    const stale = await reg.removeStale();
    assert.deepEqual(stale.map((e) => e.key), ['dead']);
    assert.deepEqual((await reg.list()).map((e) => e.key), ['live']);
    await reg.unregister('live');
    assert.deepEqual(await reg.list(), []);
  });

  test('processIsAlive: running yes, exited and reaped no', () => {
    assert.equal(processIsAlive(process.pid), true);
    const exited = spawnSync('true');
    assert.equal(exited.status, 0);
    assert.equal(processIsAlive(exited.pid!), false);
  });
});

describe('preflight', () => {
  test('snapshot ids', () => {
    checkSnapshotId('snap-0123456789abcdef0');
    checkSnapshotId('snap-01234567');
    assert.throws(() => checkSnapshotId('snap-0123'), /not a valid snapshot id/);
  });
  test('mountpoints: missing, not a directory, not empty, already mounted, fine', async () => {
    assert.throws(() => checkMountpoint(join(dir, 'nope')), /does not exist/);
    await writeFile(join(dir, 'file'), 'x');
    assert.throws(() => checkMountpoint(join(dir, 'file')), /is not a directory/);
    await mkdir(join(dir, 'full'));
    await writeFile(join(dir, 'full', 'x'), 'x');
    assert.throws(() => checkMountpoint(join(dir, 'full')), /is not empty \(1 entry\)/);
    assert.throws(() => checkMountpoint('/proc'), /already a mountpoint \(proc/);
    await mkdir(join(dir, 'empty'));
    assert.equal(checkMountpoint(join(dir, 'empty', '..', 'empty')), join(dir, 'empty'));
  });
  test('FUSE device checks', async () => {
    assert.throws(() => checkFuse({ device: join(dir, 'no-fuse') }), /\/no-fuse does not exist/);
    assert.throws(() => checkFuse({ device: join(dir, 'file') }), /is not a character device/);
    checkFuse(); // this machine has FUSE
    assert.throws(() => checkFuse({ uid: 1000, env: { PATH: dir } }), /fusermount is missing/);
  });
  test('readiness lines', () => {
    assert.deepEqual(parseReadyLine('noise\n{"ok":false,"message":"m","exitCode":3}\n'), { ok: false, message: 'm', exitCode: 3 });
    assert.equal(parseReadyLine(''), undefined);
    assert.equal(parseReadyLine('{broken'), undefined);
  });
});
