/**
 * ProcessLock (src/os/process-lock.ts): a kernel-held lock. Other processes are real child
 * processes (test/helpers/lock-holder.ts), killed with SIGKILL to show the kernel releases it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireProcessLock, lockHolder, LockBusyError } from '../../../src/os/process-lock.js';
import { UnsafePathError } from '../../../src/os/private-path.js';
import { holdLock, tryLockInChild } from '../../helpers/lock-holder.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ebsmount-lock-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('held by another process: refused with its pid; released by the kernel on kill -9', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'x.lock');
    const h = await holdLock(path);
    try {
      assert.equal(lockHolder(path), h.pid);
      assert.throws(() => acquireProcessLock(path), (e: unknown) => e instanceof LockBusyError && e.holderPid === h.pid);
    } finally {
      await h.kill9();
    }
    assert.equal(lockHolder(path), undefined);
    const lock = acquireProcessLock(path);
    assert.equal(lockHolder(path), process.pid);
    lock.release();
    lock.release(); // idempotent
    assert.equal(lockHolder(path), undefined);
  });
});

test('within one process: a second acquire is refused until release', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'x.lock');
    const lock = acquireProcessLock(path);
    assert.throws(() => acquireProcessLock(path), LockBusyError);
    lock.release();
    acquireProcessLock(path).release();
  });
});

test('racing starts: exactly one of eight processes gets the lock', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'x.lock');
    const hs = await Promise.all(Array.from({ length: 8 }, () => tryLockInChild(path)));
    try {
      const answers = hs.map((h) => h.answer);
      assert.equal(answers.filter((a) => a === 'got').length, 1, answers.join(','));
      assert.equal(answers.filter((a) => a === 'busy').length, 7, answers.join(','));
    } finally {
      await Promise.all(hs.map((h) => h.kill9()));
    }
  });
});

test('unsafe lock files are refused: symlink, writable by others, owned by another user', async () => {
  await withDir(async (dir) => {
    const target = join(dir, 'target');
    await writeFile(target, '');
    await chmod(target, 0o600);
    await symlink(target, join(dir, 'link.lock'));
    assert.throws(() => acquireProcessLock(join(dir, 'link.lock')), (e: unknown) => e instanceof UnsafePathError && /symbolic link/.test(e.message));
    const open = join(dir, 'open.lock');
    await writeFile(open, '');
    await chmod(open, 0o666);
    assert.throws(() => acquireProcessLock(open), (e: unknown) => e instanceof UnsafePathError && /writable by others/.test(e.message));
    if (process.getuid!() === 0) {
      const theirs = join(dir, 'theirs.lock');
      await writeFile(theirs, '');
      await chmod(theirs, 0o600);
      await chown(theirs, 65534, 65534);
      assert.throws(() => acquireProcessLock(theirs), (e: unknown) => e instanceof UnsafePathError && /owned by uid 65534/.test(e.message));
    }
  });
});
