/**
 * E2E: `ebsmount browse` and `ebsmount unmount DIR` with the real kernel and tools.
 * - A GPT disk with ext4, xfs, btrfs and NTFS partitions holding a known tree, a vfat partition
 *   (this kernel has no vfat driver) and an unknown one: every tree byte-identical under DIR/pN
 *   with forensic-safe options, vfat and unknown listed with their reason, `status` shows it;
 *   a busy filesystem refuses the unmount naming it; unmount leaves no mount, loop device,
 *   runtime dir or process.
 * - MBR with a primary and two logicals; a GPT with a zeroed primary header; a bare ext4 disk
 *   (mounted at DIR); --partition N; unmount after a kill -9 of the daemon.
 * - --replay on ext4 with an unreplayed journal shows the replayed state; the snapshot is
 *   unchanged and no child snapshot is created.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../../helpers/cli.js';
import { makeGptDisk, makeVfatImage, treeFs } from '../../helpers/disks.js';
import { makeTree, run, treeManifest } from '../../helpers/images.js';
import { cleanup, cleanupAll, importImage, tempDir, waitGone } from '../../helpers/mounts.js';
import { listAllBlocks, ebsClient, startServer, type TestServer } from '../../helpers/server.js';

interface Record {
  key: string;
  dir: string;
  runtimeDir: string;
  fuseMountpoint: string;
  daemonPid: number;
  targets: { label: string; fsType: string; mounted: boolean; mountpoint?: string; reason?: string; loop?: string }[];
  notes: string[];
}

async function mountsUnder(dir: string): Promise<string[]> {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  return text.split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p === dir || p.startsWith(`${dir}/`));
}

async function loopsUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
    try {
      if (readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').startsWith(dir)) out.push(name);
    } catch {
      // not attached
    }
  }
  return out;
}

/** Snapshots started on the server: 'start' records in its metadata log (src/server/store.ts). */
function startsIn(dataDir: string): number {
  return (readFileSync(join(dataDir, 'metadata.log'), 'utf8').match(/"t":"start"/g) ?? []).length;
}

function mountOptions(dir: string): string[] {
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === dir)!;
  const f = line.split(' ');
  const sep = f.indexOf('-', 6);
  return [...f[5]!.split(','), ...(f[sep + 3] ?? '').split(',')];
}

describe('ebsmount browse', { timeout: 900_000 }, () => {
  let server: TestServer;
  let work: string;
  let src: string;
  let want: Map<string, string>;
  let runDir: string;
  const env = () => ({ EBSMOUNT_RUN_DIR: runDir, XDG_STATE_HOME: join(work, 'state') });

  /** `ebsmount browse` with cleanup registered (unmount, then anything left by force). */
  async function browse(snap: string, args: string[] = []): Promise<{ dir: string; rec: Record; stdout: string }> {
    const dir = join(work, `b-${Math.random().toString(36).slice(2, 8)}`);
    await mkdir(dir);
    cleanup.add(`unbrowse ${dir}`, async () => {
      if ((await mountsUnder(dir)).length || existsSync(join(runDir, 'browse'))) await runCli(['unmount', dir], { env: env(), timeoutMs: 120_000 });
    });
    const r = await runCli(['browse', snap, dir, '--endpoint', server.endpoint, ...args], { env: env(), timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    return { dir, rec: await recordOf(dir), stdout: r.stdout };
  }

  async function recordOf(dir: string): Promise<Record> {
    const root = join(runDir, 'browse');
    for (const n of readdirSync(root).filter((x) => x.endsWith('.json'))) {
      const rec = JSON.parse(readFileSync(join(root, n), 'utf8')) as Record;
      if (rec.dir === dir) return rec;
    }
    throw new Error(`no browse record for ${dir}`);
  }

  async function unmountClean(dir: string, rec: Record): Promise<void> {
    const u = await runCli(['unmount', dir], { env: env(), timeoutMs: 120_000 });
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stderr, /unmounted the browse of snap-/);
    assert.deepEqual(await mountsUnder(dir), [], 'no filesystem left mounted');
    assert.deepEqual(await mountsUnder(rec.runtimeDir), [], 'no FUSE mount left');
    assert.deepEqual(await loopsUnder(rec.runtimeDir), [], 'no loop device left');
    assert.equal(existsSync(rec.runtimeDir), false, 'runtime dir removed');
    assert.deepEqual(readdirSync(dir), [], 'the pN directories are removed');
    assert.ok(await waitGone(rec.daemonPid, 15_000), 'daemon gone');
  }

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-browse-');
    runDir = join(work, 'run');
    src = join(work, 'src');
    await makeTree(src, { files: 300, seed: 31 });
    want = await treeManifest(src);
  });
  after(() => cleanupAll());

  test('GPT with ext4, xfs, btrfs, NTFS, vfat and unknown: trees byte-identical, reasons listed, status, busy, unmount', async () => {
    const image = join(work, 'gpt.img');
    await makeGptDisk(image, [
      { sizeMiB: 96, name: 'root', make: treeFs('ext4', 96, src) },
      { sizeMiB: 320, name: 'data', make: treeFs('xfs', 320, src) },
      { sizeMiB: 160, name: 'btr', make: treeFs('btrfs', 160, src) },
      { sizeMiB: 96, code: '0700', name: 'win', make: treeFs('ntfs', 96, src) },
      { sizeMiB: 32, code: 'ef00', name: 'EFI System', make: (f) => makeVfatImage(f, 'EFI') },
      { sizeMiB: 4, code: '8300', name: 'junk', make: (f) => run('dd', ['if=/dev/urandom', `of=${f}`, 'bs=1M', 'count=4', 'conv=notrunc', 'status=none']) },
    ]);
    const snap = await importImage(server.endpoint, image);
    const { dir, rec, stdout } = await browse(snap);
    assert.match(stdout, new RegExp(`^browsing ${snap} at ${dir} \\(read-only;`));
    for (const [n, fs] of [[1, 'ext4'], [2, 'xfs'], [3, 'btrfs'], [4, 'ntfs']] as const) {
      const mp = join(dir, `p${n}`);
      assert.match(stdout, new RegExp(`^p${n} +${fs} .* ${mp}$`, 'm'));
      const got = await treeManifest(mp);
      assert.equal(got.size, want.size, `p${n} file count`);
      for (const [path, sha] of want) assert.equal(got.get(path), sha, `p${n} (${fs}): ${path}`);
      const opts = mountOptions(mp);
      for (const o of ['ro', 'nodev', 'nosuid', 'noexec']) assert.ok(opts.includes(o), `p${n}: ${o} in ${opts.join(',')}`);
    }
    assert.ok(mountOptions(join(dir, 'p2')).includes('norecovery'), 'xfs norecovery');
    assert.ok(mountOptions(join(dir, 'p2')).includes('nouuid'), 'xfs nouuid');
    assert.ok(mountOptions(join(dir, 'p3')).some((o) => /nologreplay/.test(o)), 'btrfs nologreplay');
    assert.match(stdout, /^p5 +vfat +EFI +32\.0 MiB +not mounted: this kernel has no vfat driver \(not in \/proc\/filesystems\) \(file: .*-p5\.img\)$/m);
    assert.match(stdout, /^p6 +unknown +4\.00? MiB +not mounted: no filesystem recognised/m);
    // loop devices are attached to the partition files, read-only
    for (const t of rec.targets.filter((x) => x.mounted)) {
      assert.equal(readFileSync(`/sys/block/${t.loop!.slice(5)}/ro`, 'utf8').trim(), '1', `${t.label}: read-only loop`);
    }

    const st = await runCli(['status'], { env: env() });
    assert.equal(st.code, 0, st.stderr);
    const js = await runCli(['status', dir, '--json'], { env: env() });
    assert.equal(js.code, 0, js.stderr);
    const doc = JSON.parse(js.stdout) as { browse: Record; mount: { snapshotId: string; mountpoint: string } };
    assert.equal(doc.browse.dir, dir);
    assert.deepEqual(doc.browse.targets.map((t) => [t.label, t.mounted]), [['p1', true], ['p2', true], ['p3', true], ['p4', true], ['p5', false], ['p6', false]]);
    assert.equal(doc.mount.snapshotId, snap);
    assert.equal(doc.mount.mountpoint, rec.fuseMountpoint);
    assert.match(st.stdout, new RegExp(`^browse: ${snap} at ${dir}`, 'm'));
    assert.match(st.stdout, new RegExp(`^p1 +ext4 .* ${join(dir, 'p1')}$`, 'm'));

    // busy: an open file on p3 stops the unmount, naming p3; nothing else is touched
    const fd = openSync(join(dir, 'p3', 'big', 'large0.bin'), 'r');
    try {
      const busy = await runCli(['unmount', dir], { env: env(), timeoutMs: 120_000 });
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, new RegExp(`^ebsmount: ${join(dir, 'p3')} is busy: close the files open there`));
      assert.ok((await mountsUnder(join(dir, 'p3'))).length === 1, 'p3 still mounted');
    } finally {
      closeSync(fd);
    }
    await unmountClean(dir, rec);
  });

  test('MBR with a primary and two logicals in an extended partition: p1, p5, p6', async () => {
    const image = join(work, 'mbr.img');
    const small = join(work, 'small');
    await mkdir(join(small, 'etc'), { recursive: true });
    await run('cp', ['-r', join(src, 'd1'), join(small, 'd1')]);
    const smallWant = await treeManifest(small);
    await run('truncate', ['-s', '200M', image]);
    await run('sfdisk', ['-q', image], { input: ['label: dos', 'start=2048, size=131072, type=83', 'start=133120, size=264192, type=5', 'start=135168, size=131072, type=83', 'start=268288, size=128000, type=83', ''].join('\n') });
    const { fillPartition } = await import('../../helpers/disks.js');
    for (const startLba of [2048, 135168, 268288]) {
      await fillPartition(image, startLba * 512, (startLba === 268288 ? 128000 : 131072) * 512, (f) => run('mkfs.ext4', ['-q', '-F', '-d', small, f]));
    }
    const snap = await importImage(server.endpoint, image);
    const { dir, rec } = await browse(snap);
    assert.deepEqual(rec.targets.map((t) => [t.label, t.fsType, t.mounted]), [['p1', 'ext4', true], ['p5', 'ext4', true], ['p6', 'ext4', true]]);
    for (const p of ['p1', 'p5', 'p6']) assert.deepEqual(await treeManifest(join(dir, p)), smallWant, p);
    await unmountClean(dir, rec);
  });

  test('GPT with a zeroed primary header: the backup is used and said so; bare ext4 at DIR; --partition N at DIR', async () => {
    const image = join(work, 'gpt-zeroed.img');
    await makeGptDisk(image, [
      { sizeMiB: 8, code: 'ef02', name: 'bios' },
      { sizeMiB: 96, name: 'root', make: treeFs('ext4', 96, src) },
    ]);
    await run('dd', ['if=/dev/zero', `of=${image}`, 'bs=512', 'seek=1', 'count=1', 'conv=notrunc', 'status=none']);
    const snap = await importImage(server.endpoint, image);
    let b = await browse(snap);
    assert.match(b.stdout, /^note: primary GPT header at LBA 1 is damaged \(no "EFI PART" signature\): using the backup GPT/m);
    assert.deepEqual(await treeManifest(join(b.dir, 'p2')), want);
    await unmountClean(b.dir, b.rec);

    b = await browse(snap, ['--partition', '2']);
    assert.deepEqual(b.rec.targets.map((t) => t.label), ['p2']);
    assert.deepEqual(await treeManifest(b.dir), want, '--partition 2 mounted at DIR itself');
    await unmountClean(b.dir, b.rec);

    const badDir = join(work, 'no-such-partition');
    await mkdir(badDir);
    const bad = await runCli(['browse', snap, badDir, '--endpoint', server.endpoint, '--partition', '9'], { env: env(), timeoutMs: 120_000 });
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /^ebsmount: the snapshot has no partition 9 \(partitions: 1, 2\)$/m);
    assert.deepEqual(await mountsUnder(badDir), []);
    assert.deepEqual(await mountsUnder(join(runDir, 'browse')), [], 'the snapshot mount was undone');
    assert.deepEqual(readdirSync(join(runDir, 'browse')).filter((n) => n.endsWith('.json')), [], 'no record left');

    const bare = join(work, 'bare.img');
    await run('truncate', ['-s', '96M', bare]);
    await run('mkfs.ext4', ['-q', '-F', '-d', src, bare]);
    const bareSnap = await importImage(server.endpoint, bare);
    b = await browse(bareSnap);
    assert.deepEqual(b.rec.targets.map((t) => [t.label, t.mountpoint]), [['disk', b.dir]]);
    assert.deepEqual(await treeManifest(b.dir), want);
    await unmountClean(b.dir, b.rec);
  });

  test('two browses side by side; browse as a non-root user is refused in one line', async () => {
    const mk = async (name: string, label: string) => {
      const img = join(work, name);
      await run('truncate', ['-s', '64M', img]);
      await run('mkfs.ext4', ['-q', '-F', '-L', label, '-d', join(src, 'd2'), img]);
      return importImage(server.endpoint, img);
    };
    const [a, b] = [await mk('a.img', 'alpha'), await mk('b.img', 'beta')];
    const ba = await browse(a);
    const bb = await browse(b);
    const wantD2 = await treeManifest(join(src, 'd2'));
    assert.deepEqual(await treeManifest(ba.dir), wantD2);
    assert.deepEqual(await treeManifest(bb.dir), wantD2);
    assert.match(ba.stdout, /^disk +ext4 +alpha /m);
    assert.match(bb.stdout, /^disk +ext4 +beta /m);
    await unmountClean(ba.dir, ba.rec);
    assert.deepEqual(await treeManifest(bb.dir), wantD2, 'the other browse is untouched');
    await unmountClean(bb.dir, bb.rec);

    const { runCliAsNobody } = await import('../../helpers/cli.js');
    const view = join(work, 'checkout');
    await mkdir(view, { recursive: true, mode: 0o755 });
    await chmod(work, 0o755);
    const r = await runCliAsNobody(view, ['browse', a, work]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'ebsmount: browse attaches loop devices and mounts filesystems: run it as root (sudo ebsmount browse ...)\n');
  });

  test('Ctrl-C during browse undoes what it had mounted (exit 130, nothing left)', async () => {
    const slow = await startServer({ dataDir: join(work, 'slow-data'), args: ['--latency-ms', '2000'] });
    cleanup.add('slow server', () => slow.stop());
    // Partitions away from block 0 (which the mount itself already read for the table): their
    // superblocks cost slow fetches while browse reads them.
    const img = join(work, 'int.img');
    await makeGptDisk(img, [
      { sizeMiB: 32, name: 'a', make: (f) => run('mkfs.ext4', ['-q', '-F', f]) },
      { sizeMiB: 32, name: 'b', make: (f) => run('mkfs.ext4', ['-q', '-F', f]) },
    ]);
    const snap = await importImage(slow.endpoint, img);
    const dir = join(work, 'interrupted');
    await mkdir(dir);
    cleanup.add(`unbrowse ${dir}`, () => runCli(['unmount', dir], { env: env(), timeoutMs: 120_000 }));
    const { spawn } = await import('node:child_process');
    const { CLI_PATH, cliEnv } = await import('../../helpers/cli.js');
    const child = spawn(process.execPath, [CLI_PATH, 'browse', snap, dir, '--endpoint', slow.endpoint], { env: cliEnv(env()), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    // Once the snapshot is mounted (the record names the daemon), reading the superblocks takes >= 4 s.
    let rec: Record | undefined;
    for (let i = 0; i < 1200 && !rec?.daemonPid; i++) {
      await new Promise((r) => setTimeout(r, 50));
      rec = await recordOf(dir).catch(() => undefined);
    }
    assert.ok(rec?.daemonPid, 'the snapshot got mounted');
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /^ebsmount: interrupted \(SIGINT\): everything browse had mounted is undone$/m);
    assert.deepEqual(await mountsUnder(rec.runtimeDir), []);
    assert.deepEqual(await loopsUnder(rec.runtimeDir), []);
    assert.equal(existsSync(rec.runtimeDir), false);
    assert.ok(await waitGone(rec.daemonPid, 15_000));
  });

  test('unmount after the daemon was killed (kill -9): filesystems, loop devices and the dead FUSE mount are released', async () => {
    const bare = join(work, 'crash.img');
    await run('truncate', ['-s', '64M', bare]);
    await run('mkfs.ext4', ['-q', '-F', bare]);
    const snap = await importImage(server.endpoint, bare);
    const { dir, rec } = await browse(snap);
    process.kill(rec.daemonPid, 'SIGKILL');
    assert.ok(await waitGone(rec.daemonPid, 15_000));
    await unmountClean(dir, rec);
  });

  test('--replay: an unreplayed ext4 journal is replayed into scratch; the snapshot is unchanged; no child', async () => {
    const tree = join(work, 'jtree');
    await mkdir(tree);
    await run('sh', ['-c', `printf 'old content\\n' > ${tree}/hello.txt`]);
    const image = join(work, 'journal.img');
    await run('truncate', ['-s', '64M', image]);
    await run('mkfs.ext4', ['-q', '-F', '-d', tree, image]);
    const blk = (await run('debugfs', ['-R', 'bmap /hello.txt 0', image])).stdout.trim();
    const newBlock = join(work, 'new-block');
    await run('sh', ['-c', `printf 'NEW content\\n' > ${newBlock} && truncate -s 4096 ${newBlock}`]);
    // a transaction in the journal only (debugfs journal writer): needs_recovery, data in place unchanged
    await run('sh', ['-c', `printf 'jo\\njw -b ${blk} ${newBlock}\\njc\\n' | debugfs -w -f - ${image}`]);
    assert.match((await run('dumpe2fs', ['-h', image])).stdout, /needs_recovery/);
    const snap = await importImage(server.endpoint, image);
    const client = ebsClient(server.endpoint);
    const before = await listAllBlocks(client, snap);
    const startsBefore = startsIn(server.dataDir);

    let b = await browse(snap);
    assert.equal(readFileSync(join(b.dir, 'hello.txt'), 'utf8'), 'old content\n', 'read-only browse: noload, the journal is not replayed');
    await unmountClean(b.dir, b.rec);

    b = await browse(snap, ['--replay']);
    assert.match(b.stdout, /journals replayed into scratch, nothing committed/);
    assert.equal(readFileSync(join(b.dir, 'hello.txt'), 'utf8'), 'NEW content\n', '--replay shows the replayed state');
    await unmountClean(b.dir, b.rec);

    const after = await listAllBlocks(client, snap);
    assert.deepEqual([...after.blocks.keys()], [...before.blocks.keys()], 'the snapshot lists the same blocks');
    assert.equal(startsIn(server.dataDir), startsBefore, 'no snapshot was started (no child)');
    // browse again read-only: the snapshot still holds the unreplayed state
    b = await browse(snap);
    assert.equal(readFileSync(join(b.dir, 'hello.txt'), 'utf8'), 'old content\n');
    await unmountClean(b.dir, b.rec);
  });
});
