/**
 * planBrowse: forensic-safe options per filesystem, --replay dropping only the no-replay options,
 * and the reason for every filesystem that is not mounted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mountChoice, planBrowse } from '../../../src/browse/mount-plan.js';
import type { DiskReport } from '../../../src/disk/inspect-disk.js';
import { makePartition } from '../../../src/disk/partition.js';
import type { FilesystemInfo } from '../../../src/disk/fs-probe.js';

const linux = { kernelFilesystems: new Set(['ext4', 'xfs', 'btrfs']), ntfs3g: true };
const fs = (type: FilesystemInfo['type']): FilesystemInfo => ({ type, notes: [] });

test('read-only: ro,nodev,nosuid,noexec plus noload / norecovery,nouuid / rescue=nologreplay; ntfs-3g ro', () => {
  assert.deepEqual(mountChoice(fs('ext3'), linux, false).mount, { helper: 'kernel', type: 'ext4', options: ['ro', 'nodev', 'nosuid', 'noexec', 'noload'] });
  assert.deepEqual(mountChoice(fs('xfs'), linux, false).mount?.options, ['ro', 'nodev', 'nosuid', 'noexec', 'norecovery', 'nouuid']);
  assert.deepEqual(mountChoice(fs('btrfs'), linux, false).mount?.options, ['ro', 'nodev', 'nosuid', 'noexec', 'rescue=nologreplay']);
  assert.deepEqual(mountChoice(fs('ntfs'), linux, false).mount, { helper: 'ntfs-3g', type: 'ntfs', options: ['ro', 'nodev', 'nosuid', 'noexec'] });
});

test('--replay keeps ro and the safety options but lets the kernel replay (no noload / norecovery / nologreplay)', () => {
  assert.deepEqual(mountChoice(fs('ext4'), linux, true).mount?.options, ['ro', 'nodev', 'nosuid', 'noexec']);
  assert.deepEqual(mountChoice(fs('xfs'), linux, true).mount?.options, ['ro', 'nodev', 'nosuid', 'noexec', 'nouuid']);
  assert.deepEqual(mountChoice(fs('btrfs'), linux, true).mount?.options, ['ro', 'nodev', 'nosuid', 'noexec']);
});

test('not mounted, with the reason: vfat without a driver, swap, LVM, LUKS, unknown, NTFS without ntfs-3g', () => {
  assert.match(mountChoice(fs('vfat'), linux, false).skip!, /no vfat driver/);
  assert.ok(mountChoice(fs('vfat'), { ...linux, kernelFilesystems: new Set(['vfat']) }, false).mount);
  assert.match(mountChoice(fs('swap'), linux, false).skip!, /swap/);
  assert.match(mountChoice(fs('LVM2_member'), linux, false).skip!, /LVM2 physical volume/);
  assert.match(mountChoice(fs('crypto_LUKS'), linux, false).skip!, /LUKS/);
  assert.match(mountChoice(fs('unknown'), linux, false).skip!, /no filesystem recognised/);
  assert.match(mountChoice(fs('ntfs'), { ...linux, ntfs3g: false }, false).skip!, /ntfs-3g/);
});

test('partitions go to pN (files SNAP-pN.img), a bare disk to DIR; --partition filters', () => {
  const p = (n: number, first: number) => makePartition({ number: n, kind: 'gpt', firstLba: first, lastLba: first + 2047, type: 'x', typeName: 'x' });
  const report: DiskReport = {
    table: { scheme: 'gpt', diskSizeBytes: 1 << 30, sectorSize: 512, partitions: [p(1, 2048), p(15, 4096)], notes: [] },
    partitions: [{ partition: p(1, 2048), filesystem: fs('ext4') }, { partition: p(15, 4096), filesystem: fs('vfat') }],
  };
  const plan = planBrowse('snap-1', report, linux, { replay: false });
  assert.deepEqual(plan.map((t) => [t.label, t.fileName, t.subdir, Boolean(t.mount)]), [['p1', 'snap-1-p1.img', 'p1', true], ['p15', 'snap-1-p15.img', 'p15', false]]);
  assert.deepEqual(planBrowse('snap-1', report, linux, { replay: false, partition: 15 }).map((t) => t.label), ['p15']);
  const bare: DiskReport = { table: { scheme: 'none', diskSizeBytes: 1 << 30, sectorSize: 512, partitions: [], notes: [] }, partitions: [], bare: fs('xfs') };
  assert.deepEqual(planBrowse('snap-1', bare, linux, { replay: false }).map((t) => [t.label, t.fileName, t.subdir]), [['disk', 'snap-1.img', '']]);
});
