/**
 * E2E: partition files in a real mount. A GPT disk (ext4, btrfs, NTFS partitions with known
 * trees) and an MBR disk (a primary and two logicals in an extended partition), imported and
 * mounted: MNT holds SNAP.img and SNAP-pN.img (N = the table's number); each partition file's
 * SHA-256 equals the disk's bytes at the partition's offset; The Sleuth Kit's `fls -r` lists the
 * same tree on a partition file as on the source partition; writes through a partition file of
 * a writable mount land at the partition's offset of the whole disk; --no-partitions serves only
 * SNAP.img; a damaged table is a status note, not a failed mount.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, readdirSync, readSync, writeSync, closeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { makeGptDisk, treeFs } from '../../helpers/disks.js';
import { makeTree, run, sha256File } from '../../helpers/images.js';
import { cleanup, cleanupAll, importImage, mountSnapshot, tempDir } from '../../helpers/mounts.js';
import { startServer, type TestServer } from '../../helpers/server.js';

const MiB = 1024 * 1024;

/** `fls -r` output with inode numbers stripped (they are the same; names and types matter). */
async function flsTree(args: string[]): Promise<string[]> {
  const r = await run('fls', ['-r', '-p', ...args]);
  return r.stdout.split('\n').filter(Boolean).sort();
}

describe('partition files in a mount', { timeout: 600_000 }, () => {
  let server: TestServer;
  let work: string;
  let gptImage: string;
  let gptSnap: string;
  let parts: { number: number; start: number; size: number }[];

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-pfiles-');
    const src = join(work, 'src');
    await makeTree(src, { files: 200, seed: 21 });
    gptImage = join(work, 'gpt.img');
    parts = await makeGptDisk(gptImage, [
      { sizeMiB: 96, name: 'root', make: treeFs('ext4', 96, src) },
      { sizeMiB: 8, code: 'ef02', name: 'bios' },
      { sizeMiB: 160, name: 'btr', make: treeFs('btrfs', 160, src) },
      { sizeMiB: 96, code: '0700', name: 'win', make: treeFs('ntfs', 96, src) },
    ]);
    gptSnap = await importImage(server.endpoint, gptImage);
  });
  after(() => cleanupAll());

  test('GPT: a file per partition, byte-identical to the disk at its offset; fls -r lists the same trees', async () => {
    const m = await mountSnapshot(server.endpoint, gptSnap);
    assert.deepEqual(readdirSync(m.mountpoint).sort(), [`${gptSnap}-p1.img`, `${gptSnap}-p2.img`, `${gptSnap}-p3.img`, `${gptSnap}-p4.img`, `${gptSnap}.img`]);
    for (const p of parts) {
      const file = join(m.mountpoint, `${gptSnap}-p${p.number}.img`);
      assert.equal(await sha256File(file), await sha256File(gptImage, { start: p.start, end: p.start + p.size }), `p${p.number}`);
    }
    for (const n of [1, 4]) {
      const p = parts[n - 1]!;
      const want = await flsTree(['-o', String(p.start / 512), gptImage]);
      const got = await flsTree([join(m.mountpoint, `${gptSnap}-p${n}.img`)]);
      assert.ok(want.length > 200, `fls lists the tree of p${n} (${want.length} lines)`);
      assert.deepEqual(got, want, `fls -r on p${n}`);
    }
    const st = await m.status();
    assert.deepEqual((st.partitionTable as { scheme: string }).scheme, 'gpt');
    assert.equal((st.files as unknown[]).length, 5);
    assert.equal((await m.unmount()).code, 0);
  });

  test('MBR with a primary and two logicals: SNAP-p1, -p5, -p6 (no file for the extended container)', async () => {
    const image = join(work, 'mbr.img');
    await run('truncate', ['-s', '64M', image]);
    await run('sfdisk', ['-q', image], {
      input: ['label: dos', 'start=2048, size=20480, type=83', 'start=22528, size=100000, type=5', 'start=24576, size=20480, type=83', 'start=47104, size=20480, type=83', ''].join('\n'),
    });
    await run('dd', ['if=/dev/urandom', `of=${image}`, 'bs=1M', 'count=60', 'seek=1', 'conv=notrunc', 'status=none']);
    // dd over the EBRs destroyed them: write the table again (sfdisk keeps the data between)
    await run('sfdisk', ['-q', image], {
      input: ['label: dos', 'start=2048, size=20480, type=83', 'start=22528, size=100000, type=5', 'start=24576, size=20480, type=83', 'start=47104, size=20480, type=83', ''].join('\n'),
    });
    const snap = await importImage(server.endpoint, image);
    const m = await mountSnapshot(server.endpoint, snap);
    assert.deepEqual(readdirSync(m.mountpoint).sort(), [`${snap}-p1.img`, `${snap}-p5.img`, `${snap}-p6.img`, `${snap}.img`]);
    for (const [n, startLba] of [[1, 2048], [5, 24576], [6, 47104]] as const) {
      assert.equal(await sha256File(join(m.mountpoint, `${snap}-p${n}.img`)), await sha256File(image, { start: startLba * 512, end: (startLba + 20480) * 512 }), `p${n}`);
    }
    assert.equal((await m.unmount()).code, 0);
  });

  test('writable mount: a write through a partition file lands at the partition offset of the disk', async () => {
    const m = await mountSnapshot(server.endpoint, gptSnap, { args: ['--writable'] });
    const p = parts[1]!; // the empty BIOS-boot partition
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) % 256;
    const at = 123_457;
    const fd = openSync(join(m.mountpoint, `${gptSnap}-p2.img`), 'r+');
    try {
      assert.equal(writeSync(fd, data, 0, data.length, at), data.length);
      // a write straddling the partition's end is cut at the end
      assert.equal(writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, p.size - 1024), 1024);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const whole = openSync(m.imagePath, 'r');
    try {
      const back = Buffer.alloc(data.length);
      readSync(whole, back, 0, back.length, p.start + at);
      assert.deepEqual(back, data);
      const edge = Buffer.alloc(2048);
      readSync(whole, edge, 0, 2048, p.start + p.size - 1024);
      assert.ok(edge.subarray(0, 1024).every((b) => b === 0xab));
      const next = await sha256File(gptImage, { start: p.start + p.size, end: p.start + p.size + 1024 });
      assert.equal(await sha256File(m.imagePath, { start: p.start + p.size, end: p.start + p.size + 1024 }), next, 'the next partition is untouched');
    } finally {
      closeSync(whole);
    }
    assert.equal((await m.unmount(['--discard'])).code, 0);
  });

  test('--no-partitions: only SNAP.img', async () => {
    const m = await mountSnapshot(server.endpoint, gptSnap, { args: ['--no-partitions'] });
    assert.deepEqual(readdirSync(m.mountpoint), [`${gptSnap}.img`]);
    assert.equal(((await m.status()).partitionTable as { scheme: string }).scheme, 'off');
    assert.equal((await m.unmount()).code, 0);
  });

  test('a damaged table (both GPT headers broken) mounts: only SNAP.img, the reason in status', async () => {
    const image = join(work, 'broken.img');
    await run('truncate', ['-s', '16M', image]);
    await run('sgdisk', ['-o', '-n', '1:2048:0', image]);
    await run('dd', ['if=/dev/urandom', `of=${image}`, 'bs=512', 'seek=1', 'count=1', 'conv=notrunc', 'status=none']);
    await run('dd', ['if=/dev/urandom', `of=${image}`, 'bs=512', `seek=${16 * MiB / 512 - 1}`, 'count=1', 'conv=notrunc', 'status=none']);
    const snap = await importImage(server.endpoint, image);
    const m = await mountSnapshot(server.endpoint, snap);
    assert.deepEqual(readdirSync(m.mountpoint), [`${snap}.img`]);
    const table = (await m.status()).partitionTable as { scheme: string; notes: string[] };
    assert.equal(table.scheme, 'none');
    assert.match(table.notes.join('\n'), /no usable GPT: primary header at LBA 1: no "EFI PART" signature/);
    const text = await run(process.execPath, [join(process.cwd(), 'dist/src/cli/main.js'), 'status', m.mountpoint]).catch((e: Error) => ({ stdout: e.message }));
    assert.match(text.stdout, /table note +no usable GPT/);
    assert.equal((await m.unmount()).code, 0);
  });
});
