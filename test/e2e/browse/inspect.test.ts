/**
 * E2E: `ebsmount inspect SNAP [--json]` against the local server, run as an unprivileged user
 * (no mount, no root): the table and filesystems match what sfdisk and blkid say about the
 * source image, it fetches only a handful of blocks, and the human table names every partition.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, runCliAsNobody, type CliResult } from '../../helpers/cli.js';
import { blkidAt, makeGptDisk, makeVfatImage, sfdiskJson } from '../../helpers/disks.js';
import { run } from '../../helpers/images.js';
import { cleanup, cleanupAll, importImage, tempDir } from '../../helpers/mounts.js';
import { startServer, type TestServer } from '../../helpers/server.js';

interface InspectDoc {
  snapshotId: string;
  scheme: string;
  diskGuid?: string;
  notes: string[];
  partitions: { number: number; startSector: number; sectors: number; type: string; uuid?: string; name?: string; filesystem?: { type: string; uuid?: string; label?: string; needsRecovery?: boolean | null } }[];
  filesystem?: { type: string; label?: string; uuid?: string };
  fetched: { blocks: number; getRequests: number; listRequests: number };
}

describe('ebsmount inspect', { timeout: 300_000 }, () => {
  let server: TestServer;
  let work: string;
  let image: string;
  let snap: string;
  let view: string;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-inspect-');
    await chmod(work, 0o755);
    view = join(work, 'checkout');
    await mkdir(view, { mode: 0o755 });
    image = join(work, 'disk.img');
    await makeGptDisk(image, [
      { sizeMiB: 64, name: 'root', make: (f) => run('mkfs.ext4', ['-q', '-F', '-L', 'rootfs', f]) },
      { sizeMiB: 300, name: 'data', make: (f) => run('mkfs.xfs', ['-q', '-f', '-L', 'xdata', f]) },
      { sizeMiB: 48, code: '0700', name: 'win', make: (f) => run('mkntfs', ['-q', '-F', '-Q', '-L', 'Windows', f]) },
      { sizeMiB: 32, code: 'ef00', name: 'EFI System', make: (f) => makeVfatImage(f, 'EFI') },
      { sizeMiB: 8, code: '8300', name: 'blank' },
    ]);
    snap = await importImage(server.endpoint, image);
  });
  after(() => cleanupAll());

  test('--json as an unprivileged user: same table as sfdisk, same filesystems as blkid, a handful of blocks', async () => {
    const r = await runCliAsNobody(view, ['inspect', snap, '--endpoint', server.endpoint, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as InspectDoc;
    const sf = await sfdiskJson(image);
    assert.equal(doc.scheme, 'gpt');
    assert.deepEqual(doc.notes, []);
    assert.equal(doc.diskGuid, sf.id.toUpperCase());
    assert.deepEqual(
      doc.partitions.map((p) => [p.number, p.startSector, p.sectors, p.type, p.uuid, p.name]),
      sf.partitions.map((p) => [Number(p.node.slice(image.length)), p.start, p.size, p.type, p.uuid, p.name]),
    );
    for (const p of doc.partitions) {
      const b = await blkidAt(image, p.startSector * 512, p.sectors * 512);
      assert.deepEqual([p.filesystem?.type, p.filesystem?.uuid, p.filesystem?.label], [b.TYPE ?? 'unknown', b.UUID, b.LABEL], `p${p.number}`);
    }
    // table (block 0) + each partition's superblock area + NTFS MFT record: a handful of blocks
    assert.ok(doc.fetched.blocks >= 2 && doc.fetched.blocks <= 8, `fetched ${doc.fetched.blocks} blocks`);
    assert.equal(doc.fetched.getRequests, doc.fetched.blocks);
    assert.equal(doc.fetched.listRequests, 1);
  });

  test('the table names each partition, its filesystem and the cost', async () => {
    const r = await runCli(['inspect', snap, '--endpoint', server.endpoint]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${snap}: .*GPT \\(disk `));
    assert.match(r.stdout, /^p1 +2048 +133119 +64\.0 MiB +Linux filesystem +root +ext4 +rootfs /m);
    assert.match(r.stdout, /^p2 .* xfs +xdata .* log state unknown$/m);
    assert.match(r.stdout, /^p3 .*Microsoft basic data +win +ntfs +Windows /m);
    assert.match(r.stdout, /^p4 .*EFI system partition +EFI System +vfat \(FAT\d+\) +EFI /m);
    assert.match(r.stdout, /^p5 .* blank +unknown/m);
    assert.match(r.stdout, /^fetched \d+ blocks \(.*\) in \d+ GetSnapshotBlock and 1 ListSnapshotBlocks request$/m);
  });

  test('a bare ext4 snapshot: no table, the filesystem of the whole disk', async () => {
    const bare = join(work, 'bare.img');
    await run('truncate', ['-s', '64M', bare]);
    await run('mkfs.ext4', ['-q', '-F', '-L', 'bare', bare]);
    const id = await importImage(server.endpoint, bare);
    const r = await runCli(['inspect', id, '--endpoint', server.endpoint, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as InspectDoc;
    assert.equal(doc.scheme, 'none');
    assert.deepEqual(doc.partitions, []);
    assert.equal(doc.filesystem?.type, 'ext4');
    assert.equal(doc.filesystem?.label, 'bare');
    assert.equal(doc.fetched.blocks, 1);
  });

  test('errors are one line: a bad id (exit 2), an unknown snapshot (exit 1)', async () => {
    let r = await runCli(['inspect', 'snap-nothex', '--endpoint', server.endpoint]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^ebsmount: 'snap-nothex' is not a snapshot id/);
    r = await runCli(['inspect', 'snap-0123456789abcdef0', '--endpoint', server.endpoint]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^ebsmount: .*snap-0123456789abcdef0.*not (found|exist)/i);
  });
});
