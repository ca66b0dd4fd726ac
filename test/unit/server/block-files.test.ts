/** Unit tests of the server's content-addressed block files (src/server/block-files.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, rm, symlink, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockFiles, ZERO_SHA_HEX } from '../../../src/server/block-files.js';
import { silentLogger } from '../../../src/util/log.js';

const BLOCK = 524_288;
const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(root)) for (const f of await readdir(join(root, sub))) out.push(`${sub}/${f}`);
  return out.sort();
}

test('content is stored once, whatever the number of puts, concurrent ones included', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ebsmount-bf-'));
  try {
    const bf = new BlockFiles(join(dir, 'blocks'), silentLogger);
    await bf.init();
    const a = randomBytes(BLOCK);
    const b = randomBytes(BLOCK);
    await Promise.all([bf.put(hex(a), a), bf.put(hex(a), a), bf.put(hex(b), b), bf.put(hex(a), a)]);
    await bf.put(hex(a), a);
    assert.equal(bf.writtenBlocks, 2);
    assert.deepEqual(await files(join(dir, 'blocks')), [`${hex(a).slice(0, 2)}/${hex(a)}`, `${hex(b).slice(0, 2)}/${hex(b)}`].sort());
    assert.ok((await bf.read(hex(a))).equals(a));
    const into = Buffer.alloc(BLOCK, 9);
    assert.equal(await bf.read(hex(b), into), into);
    assert.ok(into.equals(b));
    await bf.syncDirs();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the zero block is never written and reads as zeros into any buffer', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ebsmount-bf-'));
  try {
    const bf = new BlockFiles(join(dir, 'blocks'), silentLogger);
    await bf.init();
    await bf.put(ZERO_SHA_HEX, Buffer.alloc(BLOCK));
    assert.equal(bf.writtenBlocks, 0);
    assert.deepEqual(await readdir(join(dir, 'blocks')), []);
    const dirty = Buffer.alloc(BLOCK, 0xaa);
    assert.ok((await bf.read(ZERO_SHA_HEX, dirty)).equals(Buffer.alloc(BLOCK)));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a torn file from a crash is rewritten whole when its content is put again', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ebsmount-bf-'));
  try {
    const a = randomBytes(BLOCK);
    const h = hex(a);
    await mkdir(join(dir, 'blocks', h.slice(0, 2)), { recursive: true });
    await writeFile(join(dir, 'blocks', h.slice(0, 2), h), a.subarray(0, 1000)); // torn
    const bf = new BlockFiles(join(dir, 'blocks'), silentLogger);
    await bf.init();
    await assert.rejects(bf.read(h), /shorter than a block/);
    await bf.put(h, a); // not known from the log: written again
    assert.ok((await bf.read(h)).equals(a));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('hashes become paths only when they are 64 hex digits; files 0600 in 0700 directories, never through a symlink', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ebsmount-bf-'));
  try {
    const bf = new BlockFiles(join(dir, 'blocks'), silentLogger);
    await bf.init();
    for (const bad of ['../../../etc/passwd', `${'a'.repeat(63)}/`, 'A'.repeat(64), '', `${'a'.repeat(64)}x`]) {
      assert.throws(() => bf.pathOf(bad), /not a block hash/);
      await assert.rejects(bf.read(bad), /not a block hash/);
    }
    const a = randomBytes(BLOCK);
    const b = randomBytes(BLOCK);
    // A planted symlink at b's name (as if someone could write there) is not followed.
    await mkdir(join(dir, 'blocks', hex(b).slice(0, 2)), { recursive: true, mode: 0o700 });
    await writeFile(join(dir, 'victim'), 'keep');
    await symlink(join(dir, 'victim'), bf.pathOf(hex(b)));
    await bf.put(hex(a), a);
    await bf.put(hex(b), b);
    assert.equal(await readFile(join(dir, 'victim'), 'utf8'), 'keep');
    assert.ok((await bf.read(hex(b))).equals(b));
    assert.equal((await lstat(join(dir, 'blocks'))).mode & 0o777, 0o700);
    assert.equal((await lstat(join(dir, 'blocks', hex(a).slice(0, 2)))).mode & 0o777, 0o700);
    assert.equal((await lstat(bf.pathOf(hex(a)))).mode & 0o777, 0o600);
    assert.equal((await lstat(bf.pathOf(hex(b)))).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
