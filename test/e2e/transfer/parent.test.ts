/**
 * `import --parent` end to end: a real ext4 image is imported, modified through a real loop
 * mount (files added, deleted, rewritten, and a file's data overwritten with zeros in place),
 * and imported again with the first snapshot as parent. ListChangedBlocks (real SDK) must be
 * exactly the 512 KiB blocks that differ between the two images — zeroed blocks over parent data
 * included and nothing unchanged — the child reads zeros there, and its export equals the
 * modified image. Also: an unchanged image writes nothing, a larger image grows the volume, and
 * a parent larger than the image is refused.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, open, rm, rmdir, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOCK_SIZE, GIB } from '../../../src/ebs/constants.js';
import { isAllZero } from '../../../src/ebs/checksum.js';
import { runCli } from '../../helpers/cli.js';
import { ebsClient, getBlock, listAllBlocks, listAllChanged, makeSnapshot, startServer, type TestServer } from '../../helpers/server.js';
import { makeExt4Image, makeTree, run, seededBytes } from '../../helpers/images.js';
import { assertSameImage, exportCli, importCli } from './common.js';

let server: TestServer;
let work: string;
let base: string;
let modified: string;
let parentId: string;

interface BlockInfo {
  sha: string;
  zero: boolean;
}

async function blockTable(path: string): Promise<BlockInfo[]> {
  const fh = await open(path, 'r');
  const out: BlockInfo[] = [];
  try {
    const buf = Buffer.alloc(BLOCK_SIZE);
    for (let i = 0; ; i++) {
      const { bytesRead } = await fh.read(buf, 0, BLOCK_SIZE, i * BLOCK_SIZE);
      if (bytesRead === 0) break;
      buf.fill(0, bytesRead);
      out.push({ sha: createHash('sha256').update(buf).digest('hex'), zero: isAllZero(buf) });
    }
  } finally {
    await fh.close();
  }
  return out;
}

/** Blocks whose content differs, with missing blocks (past an image's end) read as zeros. */
function differing(a: BlockInfo[], b: BlockInfo[]): { changed: number[]; zeroedOverData: number[] } {
  const zeroSha = createHash('sha256').update(Buffer.alloc(BLOCK_SIZE)).digest('hex');
  const changed: number[] = [];
  const zeroedOverData: number[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? { sha: zeroSha, zero: true };
    const y = b[i] ?? { sha: zeroSha, zero: true };
    if (x.sha !== y.sha) {
      changed.push(i);
      if (y.zero && !x.zero) zeroedOverData.push(i);
    }
  }
  return { changed, zeroedOverData };
}

async function withLoopMount(image: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const mnt = await mkdtemp(join(tmpdir(), 'ebsmount-e2e-rw-'));
  let mounted = false;
  try {
    await run('mount', ['-o', 'loop', image, mnt]);
    mounted = true;
    await fn(mnt);
    await run('sync', ['-f', mnt]);
  } finally {
    if (mounted) await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
    await rmdir(mnt).catch(() => undefined);
  }
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ebsmount-e2e-parent-'));
  const src = join(work, 'tree');
  await makeTree(src, { files: 1500, seed: 7 });
  base = join(work, 'base.img');
  await makeExt4Image(base, 256, src);
  server = await startServer();
  parentId = await importCli(server.endpoint, base, ['--description', 'base']);

  modified = join(work, 'modified.img');
  await run('cp', ['--sparse=always', base, modified]);
  await withLoopMount(modified, async (mnt) => {
    await run('mkdir', ['-p', join(mnt, 'new')]);
    await run('dd', ['if=/dev/urandom', `of=${join(mnt, 'new', 'added.bin')}`, 'bs=1M', 'count=3', 'status=none']);
    await run('rm', ['-rf', join(mnt, 'd1', 's1')]);
    // Rewrite 1 MiB in the middle of one large file, zero the first 2 MiB of another in place.
    await run('dd', ['if=/dev/urandom', `of=${join(mnt, 'big', 'large0.bin')}`, 'bs=512K', 'seek=1', 'count=2', 'conv=notrunc', 'status=none']);
    await run('dd', ['if=/dev/zero', `of=${join(mnt, 'big', 'large1.bin')}`, 'bs=1M', 'count=2', 'conv=notrunc,fsync', 'status=none']);
  });
});

after(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('import --parent writes exactly the differing blocks, zeroed ones included', async () => {
  const expected = differing(await blockTable(base), await blockTable(modified));
  assert.ok(expected.changed.length > 5, `the modification changed ${expected.changed.length} blocks`);
  assert.ok(expected.zeroedOverData.length >= 1, 'some block went from data to all zeros');

  const childId = await importCli(server.endpoint, modified, ['--parent', parentId, '--description', 'child', '--tag', 'case=parent', '--concurrency', '16']);
  const client = ebsClient(server.endpoint);
  try {
    const changed = await listAllChanged(client, parentId, childId);
    assert.deepEqual(changed.map((c) => c.BlockIndex), expected.changed, 'ListChangedBlocks = differing blocks');
    // The zeroed blocks read as zeros from the child (and as data from the parent).
    const childBlocks = (await listAllBlocks(client, childId)).blocks;
    const parentBlocks = (await listAllBlocks(client, parentId)).blocks;
    for (const i of expected.zeroedOverData.slice(0, 4)) {
      const c = await getBlock(client, childId, i, childBlocks.get(i)!);
      assert.ok(isAllZero(c.data), `child block ${i} is zeros`);
      const p = await getBlock(client, parentId, i, parentBlocks.get(i)!);
      assert.ok(!isAllZero(p.data), `parent block ${i} still has data`);
    }
  } finally {
    client.destroy();
  }
  const exported = join(work, 'child.export');
  await exportCli(server.endpoint, childId, exported);
  await assertSameImage(modified, exported);
  await rm(exported);
  // The parent still exports as the base image.
  const parentExport = join(work, 'parent.export');
  await exportCli(server.endpoint, parentId, parentExport);
  await assertSameImage(base, parentExport);
  await rm(parentExport);
});

test('an unchanged image imported over its parent writes no block', async () => {
  const id = await importCli(server.endpoint, base, ['--parent', parentId]);
  const client = ebsClient(server.endpoint);
  try {
    assert.deepEqual(await listAllChanged(client, parentId, id), []);
    assert.equal((await listAllBlocks(client, id)).indexes.length, (await listAllBlocks(client, parentId)).indexes.length);
  } finally {
    client.destroy();
  }
});

test('over an encrypted parent, zero blocks it lacks are written (they could read as random data)', async () => {
  const client = ebsClient(server.endpoint);
  try {
    const data = seededBytes(7, 'encrypted-parent', BLOCK_SIZE);
    const encryptedParent = await makeSnapshot(client, new Map([[0, data]]), { encrypted: true });
    // The image: the parent's block 0, then three blocks of zeros the parent does not have.
    const image = join(work, 'over-encrypted.img');
    const fh = await open(image, 'w');
    try {
      await fh.write(data, 0, BLOCK_SIZE, 0);
      await fh.truncate(4 * BLOCK_SIZE);
    } finally {
      await fh.close();
    }
    const child = await importCli(server.endpoint, image, ['--parent', encryptedParent]);
    assert.deepEqual((await listAllChanged(client, encryptedParent, child)).map((c) => c.BlockIndex), [1, 2, 3]);
    const listed = await listAllBlocks(client, child);
    const token2 = listed.blocks.get(2);
    assert.ok(token2, 'the child lists block 2');
    assert.ok(isAllZero((await getBlock(client, child, 2, token2)).data));
  } finally {
    client.destroy();
  }
});

test('a larger image grows the volume; a parent larger than the image is refused', async () => {
  const grown = join(work, 'grown.img');
  await run('cp', ['--sparse=always', base, grown]);
  await truncate(grown, GIB + 300 * 1024 * 1024);
  const fh = await open(grown, 'r+');
  const tailData = seededBytes(3, 'tail', 2 * BLOCK_SIZE);
  try {
    await fh.write(tailData, 0, tailData.length, GIB + 100 * BLOCK_SIZE);
  } finally {
    await fh.close();
  }
  const id = await importCli(server.endpoint, grown, ['--parent', parentId]);
  const client = ebsClient(server.endpoint);
  try {
    const changed = await listAllChanged(client, parentId, id);
    assert.deepEqual(changed.map((c) => c.BlockIndex), [2048 + 100, 2048 + 101]);
  } finally {
    client.destroy();
  }
  const exported = join(work, 'grown.export');
  await exportCli(server.endpoint, id, exported);
  await assertSameImage(grown, exported, 2 * GIB);
  await rm(exported);

  const r = await runCli(['import', base, '--parent', id, '--endpoint', server.endpoint]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `ebsmount: parent snapshot ${id} is 2 GiB, larger than the image (1 GiB): a snapshot cannot be smaller than its parent\n`);
});
