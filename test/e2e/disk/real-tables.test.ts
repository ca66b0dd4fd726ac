/**
 * The partition-table parser and filesystem probes on images made by the real tools — sgdisk
 * (GPT), sfdisk (MBR with an extended partition and logicals), mkfs.ext4/xfs/btrfs/vfat/exfat,
 * mkntfs, mkswap — compared field by field with what `sfdisk --json`, `sgdisk -p` and `blkid -p`
 * say about the same image. Also: the parser touches only a few small ranges of the disk.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openFileSource, type ByteSource } from '../../../src/disk/byte-source.js';
import { inspectDisk, type DiskReport } from '../../../src/disk/inspect-disk.js';
import { run } from '../../helpers/images.js';
import { blkidAt, fillPartition, sfdiskJson } from '../../helpers/disks.js';
import { cleanupAll, tempDir } from '../../helpers/mounts.js';

const MiB = 1024 * 1024;

/** Counts what is read, so tests can bound it. */
function counting(src: ByteSource): ByteSource & { bytes: number; reads: number } {
  const c = { sizeBytes: src.sizeBytes, bytes: 0, reads: 0, read: (o: number, l: number) => ((c.bytes += l), c.reads++, src.read(o, l)) };
  return c;
}

async function inspectFile(image: string): Promise<{ report: DiskReport; bytes: number; reads: number }> {
  const src = await openFileSource(image);
  try {
    const c = counting(src);
    const report = await inspectDisk(c);
    return { report, bytes: c.bytes, reads: c.reads };
  } finally {
    await src.close();
  }
}

function checkAgainstBlkid(fs: { type: string; uuid?: string; label?: string }, b: Record<string, string>, what: string): void {
  assert.equal(fs.type, b.TYPE ?? 'unknown', `${what}: TYPE`);
  assert.equal(fs.uuid, b.UUID, `${what}: UUID`);
  assert.equal(fs.label, b.LABEL, `${what}: LABEL`);
}

describe('tables and filesystems made by the real tools', { timeout: 300_000 }, () => {
  let work: string;
  before(async () => {
    work = await tempDir('ebsmount-tables-');
  });
  after(() => cleanupAll());

  test('GPT (sgdisk) with ext4, xfs, btrfs, vfat, ntfs, exfat, swap and an empty partition: same as sfdisk, sgdisk and blkid', async () => {
    const image = join(work, 'gpt.img');
    const layout = [
      { sizeMiB: 64, code: '8300', name: 'root', mk: (f: string) => run('mkfs.ext4', ['-q', '-F', '-L', 'rootfs', f]) },
      { sizeMiB: 300, code: '8300', name: 'data-xfs', mk: (f: string) => run('mkfs.xfs', ['-q', '-f', '-L', 'xdata', f]) },
      { sizeMiB: 128, code: '8300', name: 'btr', mk: (f: string) => run('mkfs.btrfs', ['-q', '-f', '-L', 'bvol', f]) },
      { sizeMiB: 40, code: 'ef00', name: 'EFI System', mk: (f: string) => run('mkfs.vfat', ['-n', 'EFI', '-i', '1234ABCD', f]) },
      { sizeMiB: 48, code: '0700', name: 'win', mk: (f: string) => run('mkntfs', ['-q', '-F', '-Q', '-L', 'Windows', f]) },
      { sizeMiB: 32, code: '0700', name: 'ex', mk: (f: string) => run('mkfs.exfat', ['-L', 'EXV', f]) },
      { sizeMiB: 16, code: '8200', name: 'swap', mk: (f: string) => run('mkswap', ['-L', 'sw', f]) },
      { sizeMiB: 8, code: '8300', name: 'blank', mk: async () => undefined },
    ];
    const totalMiB = 2 + layout.reduce((a, p) => a + p.sizeMiB, 0);
    await run('truncate', ['-s', `${totalMiB}M`, image]);
    const args = ['-o'];
    let start = MiB;
    const starts: number[] = [];
    layout.forEach((p, i) => {
      starts.push(start);
      args.push('-n', `${i + 1}:${start / 512}:${(start + p.sizeMiB * MiB) / 512 - 1}`, '-t', `${i + 1}:${p.code}`, '-c', `${i + 1}:${p.name}`);
      start += p.sizeMiB * MiB;
    });
    await run('sgdisk', [...args, image]);
    for (const [i, p] of layout.entries()) await fillPartition(image, starts[i]!, p.sizeMiB * MiB, p.mk);

    const { report, bytes, reads } = await inspectFile(image);
    const sf = await sfdiskJson(image);
    assert.equal(report.table.scheme, 'gpt');
    assert.equal(sf.label, 'gpt');
    assert.deepEqual(report.table.notes, []);
    assert.equal(report.table.gpt?.diskGuid, sf.id.toUpperCase());
    assert.deepEqual(
      report.partitions.map(({ partition: p }) => ({ node: `${image}${p.number}`, start: p.firstLba, size: p.sectors, type: p.type, uuid: p.uuid, name: p.name })),
      sf.partitions.map((p) => ({ node: p.node, start: p.start, size: p.size, type: p.type, uuid: p.uuid, name: p.name })),
    );
    // sgdisk -p: "   1            2048          133119   64.0 MiB    8300  root"
    const sg = (await run('sgdisk', ['-p', image])).stdout.split('\n').filter((l) => /^\s+\d+\s+\d+\s+\d+/.test(l));
    assert.equal(sg.length, layout.length);
    for (const line of sg) {
      const [n, first, last] = line.trim().split(/\s+/).map(Number);
      const p = report.partitions.find((x) => x.partition.number === n)!.partition;
      assert.deepEqual([p.firstLba, p.lastLba], [first, last], line);
    }
    for (const { partition: p, filesystem: fs } of report.partitions) {
      checkAgainstBlkid(fs, await blkidAt(image, p.startBytes, p.sizeBytes), `partition ${p.number} (${p.name})`);
    }
    assert.deepEqual(report.partitions.map((x) => x.filesystem.type), ['ext4', 'xfs', 'btrfs', 'vfat', 'ntfs', 'exfat', 'swap', 'unknown']);
    const ext4 = report.partitions[0]!.filesystem;
    assert.equal(ext4.sizeBytes, 64 * MiB);
    assert.equal(ext4.needsRecovery, false);
    assert.equal(report.partitions[4]!.filesystem.needsRecovery, false, 'ntfs not dirty');
    assert.equal(report.partitions[1]!.filesystem.sizeBytes, 300 * MiB);
    // A handful of small reads: table + one superblock region per partition (+ MFT, exFAT root, btrfs).
    assert.ok(reads <= 30 && bytes <= 256 * 1024, `read ${reads} ranges, ${bytes} bytes`);
  });

  test('MBR (sfdisk) with a primary, an extended and two logicals: numbers 1, 2, 5, 6 as sfdisk says', async () => {
    const image = join(work, 'mbr.img');
    await run('truncate', ['-s', '200M', image]);
    await run('sfdisk', ['-q', image], {
      input: ['label: dos', 'start=2048, size=65536, type=83, bootable', 'start=67584, size=331776, type=5', 'start=69632, size=131072, type=83', 'start=202752, size=100000, type=7', ''].join('\n'),
    });
    const sf = await sfdiskJson(image);
    const parts = new Map(sf.partitions.map((p) => [Number(p.node.slice(image.length)), p]));
    await fillPartition(image, parts.get(1)!.start * 512, parts.get(1)!.size * 512, (f) => run('mkfs.ext4', ['-q', '-F', '-L', 'prim', f]));
    await fillPartition(image, parts.get(5)!.start * 512, parts.get(5)!.size * 512, (f) => run('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', '-t', 'ext2', '-L', 'log5', f]));
    const { report } = await inspectFile(image);
    assert.equal(report.table.scheme, 'mbr');
    assert.deepEqual(report.table.notes, []);
    assert.equal(report.table.mbrSignature, sf.id);
    assert.deepEqual(
      report.table.partitions.map((p) => [p.number, p.firstLba, p.sectors, p.type.replace(/^0x0?/, ''), p.bootable]),
      [...parts].map(([n, p]) => [n, p.start, p.size, p.type, n === 1]),
    );
    assert.deepEqual(report.partitions.map((x) => x.partition.number), [1, 5, 6]);
    for (const { partition: p, filesystem: fs } of report.partitions) {
      checkAgainstBlkid(fs, await blkidAt(image, p.startBytes, p.sizeBytes), `partition ${p.number}`);
    }
    assert.deepEqual(report.partitions.map((x) => x.filesystem.type), ['ext4', 'ext2', 'unknown']);
  });

  test('bare ext4 with needs_recovery set (debugfs), and a GPT whose primary header is zeroed', async () => {
    const bare = join(work, 'bare.img');
    await run('truncate', ['-s', '64M', bare]);
    await run('mkfs.ext4', ['-q', '-F', '-L', 'bare', bare]);
    await run('debugfs', ['-w', '-R', 'feature needs_recovery', bare]);
    const features = (await run('dumpe2fs', ['-h', bare])).stdout;
    assert.match(features, /needs_recovery/);
    let { report } = await inspectFile(bare);
    assert.equal(report.table.scheme, 'none');
    assert.equal(report.bare?.type, 'ext4');
    assert.equal(report.bare?.needsRecovery, true);
    checkAgainstBlkid(report.bare!, await blkidAt(bare, 0, 64 * MiB), 'bare');

    const gpt = join(work, 'gpt-zeroed.img');
    await run('truncate', ['-s', '64M', gpt]);
    await run('sgdisk', ['-o', '-n', '1:2048:65535', '-c', '1:one', '-n', '2:65536:0', gpt]);
    const before = (await sfdiskJson(gpt)).partitions;
    await run('dd', ['if=/dev/zero', `of=${gpt}`, 'bs=512', 'seek=1', 'count=1', 'conv=notrunc', 'status=none']);
    ({ report } = await inspectFile(gpt));
    assert.equal(report.table.gpt?.header, 'backup');
    assert.match(report.table.notes.join(), /primary GPT header at LBA 1 is damaged \(no "EFI PART" signature\): using the backup GPT at LBA 131071/);
    assert.deepEqual(report.partitions.map((x) => [x.partition.firstLba, x.partition.sectors, x.partition.uuid]), before.map((p) => [p.start, p.size, p.uuid]));
    // sgdisk agrees: it warns and uses the backup too
    const v = await run('sgdisk', ['-p', gpt]).catch((e: Error) => ({ stdout: e.message }));
    assert.match(v.stdout, /one\b/);
  });
});
