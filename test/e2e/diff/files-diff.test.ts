/**
 * `ebsmount diff --files` end to end, as root: a GPT disk with ext4 (p1), xfs (p2) and btrfs (p3)
 * partitions holding the same known tree is imported as the parent; the child is made the way a
 * user would — a writable ebsmount mount, each partition file loop-mounted read-write, known edits
 * (add, delete, append, in-place overwrite with the mtime restored by `touch -r`, chmod, chown, a
 * file replaced by a symlink, a directory renamed), unmount = commit. `diff --files` must report
 * exactly those edits and nothing else on ext4 and xfs; on btrfs the same except the forged
 * overwrite, with the output saying it was a metadata walk; the bytes fetched stay under 10 % of
 * the volume. Every mount, loop device and daemon is undone, also when a test fails.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, rename, symlink, unlink, writeFile, appendFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { runCli } from '../../helpers/cli.js';
import { makeGptImage, makeTree, run } from '../../helpers/images.js';
import { cleanupAll, importImage, loopAttach, loopDetach, mountDev, mountSnapshot, mountpoints, tempDir } from '../../helpers/mounts.js';
import { startServer, type TestServer } from '../../helpers/server.js';

let server: TestServer;
let work: string;
let parent: string;
let child: string;
const FS = ['ext4', 'xfs', 'btrfs'] as const;

async function baseTree(dir: string): Promise<void> {
  await makeTree(join(dir, 'tree'), { files: 300, seed: 7 });
  const e = join(dir, 'edits');
  await mkdir(join(e, 'olddir', 'sub'), { recursive: true });
  await writeFile(join(e, 'log.txt'), 'line 1\n');
  await writeFile(join(e, 'data.bin'), Buffer.alloc(256 * 1024, 0x61));
  await writeFile(join(e, 'script.sh'), '#!/bin/sh\necho hi\n', { mode: 0o644 });
  await writeFile(join(e, 'owned.txt'), 'owned by root\n');
  await writeFile(join(e, 'link-me'), 'a file that becomes a symlink\n');
  await writeFile(join(e, 'gone.txt'), 'deleted in the child\n');
  await writeFile(join(e, 'olddir', 'x'), 'x\n');
  await writeFile(join(e, 'olddir', 'sub', 'y'), 'y\n');
  await chmod(join(e, 'script.sh'), 0o644);
}

async function applyEdits(root: string, scratch: string): Promise<void> {
  const e = join(root, 'edits');
  await writeFile(join(e, 'new.txt'), 'added in the child\n');
  await unlink(join(e, 'gone.txt'));
  await appendFile(join(e, 'log.txt'), 'line 2\n');
  // In place, same size, then the old timestamps put back: only the data blocks tell.
  const ref = join(scratch, `ref-${Date.now()}`);
  await writeFile(ref, '');
  await run('touch', ['-r', join(e, 'data.bin'), ref]);
  const fh = await open(join(e, 'data.bin'), 'r+');
  await fh.write(Buffer.from('FORGED'), 0, 6, 100_000);
  await fh.sync();
  await fh.close();
  await run('touch', ['-r', ref, join(e, 'data.bin')]);
  await chmod(join(e, 'script.sh'), 0o755);
  await chown(join(e, 'owned.txt'), 1000, 1000);
  await unlink(join(e, 'link-me'));
  await symlink('../tree/empty.txt', join(e, 'link-me'));
  await rename(join(e, 'olddir'), join(e, 'newdir'));
}

const EXPECTED = (withHidden: boolean) => [
  ...(withHidden ? ['M\t/edits/data.bin\tcontent, timestamps unchanged'] : []),
  'D\t/edits/gone.txt',
  'T\t/edits/link-me\tfile → symlink',
  'M\t/edits/log.txt\tsize 7 → 14',
  'A\t/edits/new.txt',
  'A\t/edits/newdir',
  'A\t/edits/newdir/sub',
  'A\t/edits/newdir/sub/y',
  'A\t/edits/newdir/x',
  'D\t/edits/olddir',
  'D\t/edits/olddir/sub',
  'D\t/edits/olddir/sub/y',
  'D\t/edits/olddir/x',
  'm\t/edits/owned.txt\towner 0:0 → 1000:1000',
  'm\t/edits/script.sh\tmode 0644 → 0755',
];

before(async () => {
  server = await startServer();
  work = await tempDir('ebsmount-difffiles-');
  const src = join(work, 'src');
  await baseTree(src);
  const img = join(work, 'disk.img');
  await makeGptImage(img, [
    { fs: 'ext4', sizeMiB: 300, srcDir: src },
    { fs: 'xfs', sizeMiB: 300, srcDir: src },
    { fs: 'btrfs', sizeMiB: 160, srcDir: src },
  ]);
  parent = await importImage(server.endpoint, img);

  const m = await mountSnapshot(server.endpoint, parent, { args: ['--writable'] });
  for (const [i, fs] of FS.entries()) {
    const dev = await loopAttach(join(m.mountpoint, `${parent}-p${i + 1}.img`), { readOnly: false });
    const dir = join(work, `rw-p${i + 1}`);
    await mkdir(dir);
    await mountDev(dev, dir, { type: fs, ...(fs === 'xfs' ? { options: 'nouuid' } : {}) });
    await applyEdits(dir, work);
    await run('umount', [dir]);
    await loopDetach(dev);
  }
  const r = await m.unmount();
  assert.equal(r.code, 0, r.stderr);
  child = r.stdout.trim();
  assert.match(child, /^snap-[0-9a-f]+$/);
});

after(async () => {
  await cleanupAll();
  await server?.stop();
});

function diff(args: string[]) {
  return runCli(['diff', '--files', ...args, '--endpoint', server.endpoint], { env: { XDG_STATE_HOME: join(work, 'state') }, timeoutMs: 600_000 });
}

test('diff --files: exactly the edits on ext4 and xfs; btrfs a metadata walk (said); under 10 % of the volume fetched; nothing left mounted', async () => {
  const r = await diff([parent, child]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const byPart = (p: string) => lines.filter((l) => l.split('\t')[1] === p).map((l) => l.split('\t').filter((_, i) => i !== 1).join('\t'));
  assert.deepEqual(byPart('p1'), EXPECTED(true), 'ext4');
  assert.deepEqual(byPart('p2'), EXPECTED(true), 'xfs');
  assert.deepEqual(byPart('p3'), EXPECTED(false), 'btrfs: the forged overwrite kept size and mtime, unseen without extents');
  assert.equal(lines.length, 3 * EXPECTED(true).length - 1, 'nothing else');
  assert.match(r.stderr, /note: p3: btrfs: extents cannot be mapped to disk offsets .*metadata walk only/);
  assert.equal(r.stderr.match(/btrfs: extents cannot be mapped/g)?.length, 1, 'said once');
  const fetched = /fetched (\d+) blocks \(([^)]*?) = ([\d.]+) % of the 1 GiB volume\)/.exec(r.stderr);
  assert.ok(fetched, r.stderr);
  assert.ok(Number(fetched[1]) > 0);
  assert.ok(Number(fetched[3]) < 10, `fetched ${fetched[3]} % of the volume`);
  assert.match(r.stderr, /at list prices/);
  // Other engineers' tests mount things on this machine too: look only at what diff made.
  assert.deepEqual((await mountpoints()).filter((p) => p.includes('/ebsmount-diff-')), [], 'every mount undone');
  const loops = await run('losetup', ['-a']);
  assert.doesNotMatch(loops.stdout, /ebsmount-diff-/, 'every loop device detached');
  assert.deepEqual((await readdir(tmpdir())).filter((n) => n.startsWith('ebsmount-diff-')), [], 'its private directories removed');
  process.stderr.write(`diff --files figures: ${r.stderr.split('\n').filter((l) => /^(ebsmount diff|read|fetched)/.test(l)).join(' | ')}\n`);
});

test('diff --files --json --content --partition 1 --path /edits: sha256 of both sides of every M; filters', async () => {
  const r = await diff([parent, child, '--json', '--content', '--partition', '1', '--path', '/edits']);
  assert.equal(r.code, 1, r.stderr);
  const doc = JSON.parse(r.stdout) as Record<string, any>;
  assert.equal(doc.differences, EXPECTED(true).length);
  assert.ok(doc.changes.every((c: any) => c.partition === 'p1' && c.path.startsWith('/edits')));
  const data = doc.changes.find((c: any) => c.path === '/edits/data.bin');
  assert.equal(data.status, 'M');
  assert.equal(data.timestampsUnchanged, true);
  assert.match(data.sha256.a, /^[0-9a-f]{64}$/);
  assert.notEqual(data.sha256.a, data.sha256.b);
  const log = doc.changes.find((c: any) => c.path === '/edits/log.txt');
  assert.ok(log.sha256.a && log.sha256.b);
  assert.deepEqual(doc.filesystems.map((f: any) => [f.partition, f.type, f.compared]), [[1, 'ext4', 'extents']]);
  assert.ok(doc.fetched.total.costUsd > 0);
  // One daemon, SNAP_B's unchanged blocks read through SNAP_A's: B fetches only changed blocks.
  assert.ok(doc.fetched.b.blocksFetched <= doc.changedBlocks, JSON.stringify(doc.fetched));
  assert.ok(doc.fetched.a.blocksFetched > 0);

  const none = await diff([parent, parent, '--partition', '2']);
  assert.equal(none.code, 0, none.stderr);
  assert.equal(none.stdout, '');
});

test('diff --files of unrelated snapshots: no changed-block list, so same-size files are compared by content (said); identical disks → exit 0', async () => {
  const twin = await importImage(server.endpoint, join(work, 'disk.img'), ['--description', 'an unrelated copy']);
  assert.notEqual(twin, parent);
  const r = await diff([parent, twin, '--partition', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /are not of one lineage: EBS cannot list their changed blocks, so every file of unchanged size is compared by content/);
  assert.match(r.stderr, /read \d+ files/);
  assert.ok(Number(/read (\d+) files/.exec(r.stderr)![1]) >= 600, 'every regular file of p1, both sides');
});

test('diff --files: errors are one line, exit 2', async () => {
  const r = await runCli(['diff', parent, child, '--content'], { env: { XDG_STATE_HOME: join(work, 'state') } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^ebsmount: --content, --path and --partition apply to --files\n$/);
  const missing = await diff([parent, 'snap-0123456789abcdef0']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^ebsmount: snapshot snap-0123456789abcdef0 not found/m);
});
