/**
 * Filesystem probes on synthetic superblocks: ext2/3/4 classification and needs_recovery, btrfs
 * log tree, swap, LVM2, LUKS; garbage is `unknown`. (Real mkfs output is checked against blkid in
 * test/e2e/disk/real-tables.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bufferSource } from '../../../src/disk/byte-source.js';
import { probeFilesystem } from '../../../src/disk/fs-probe.js';
import { writeExtSuperblock } from './fixtures.js';

const probe = (b: Buffer) => probeFilesystem(bufferSource(b));

test('ext: ext2 / ext3 / ext4 by features; needs_recovery from the RECOVER flag; size from blocks', async () => {
  const b = Buffer.alloc(1 << 20);
  writeExtSuperblock(b, 0, { compat: 0, incompat: 0x2, roCompat: 0x3, blocks: 1000, logBlockSize: 0 });
  let fs = await probe(b);
  assert.equal(fs.type, 'ext2');
  assert.equal(fs.sizeBytes, 1000 * 1024);
  assert.equal(fs.needsRecovery, undefined);
  writeExtSuperblock(b, 0, { compat: 0x4, incompat: 0x2, roCompat: 0x3 });
  fs = await probe(b);
  assert.equal(fs.type, 'ext3');
  assert.equal(fs.needsRecovery, false);
  writeExtSuperblock(b, 0, { compat: 0x4, incompat: 0x2c2 | 0x4, label: 'root', blocks: 256, logBlockSize: 2 });
  fs = await probe(b);
  assert.equal(fs.type, 'ext4');
  assert.equal(fs.needsRecovery, true);
  assert.equal(fs.label, 'root');
  assert.equal(fs.sizeBytes, 256 * 4096);
});

test('btrfs: needsRecovery when a log tree root is recorded', async () => {
  const b = Buffer.alloc(1 << 20);
  const sb = 0x10000;
  b.write('_BHRfS_M', sb + 0x40, 'latin1');
  Buffer.from('00112233445566778899aabbccddeeff', 'hex').copy(b, sb + 0x20);
  b.writeBigUInt64LE(123n << 20n, sb + 0x70);
  b.write('vol', sb + 0x12b);
  let fs = await probe(b);
  assert.deepEqual([fs.type, fs.uuid, fs.label, fs.sizeBytes, fs.needsRecovery], ['btrfs', '00112233-4455-6677-8899-aabbccddeeff', 'vol', 123 << 20, false]);
  b.writeBigUInt64LE(0x4000n, sb + 0x60);
  fs = await probe(b);
  assert.equal(fs.needsRecovery, true);
});

test('swap, LVM2 PV, LUKS', async () => {
  const s = Buffer.alloc(65536);
  s.write('SWAPSPACE2', 4086, 'latin1');
  s.writeUInt32LE(1, 1024);
  s.writeUInt32LE(15, 1028);
  s.write('myswap', 1052);
  assert.deepEqual(
    (({ type, label, sizeBytes }) => ({ type, label, sizeBytes }))(await probe(s)),
    { type: 'swap', label: 'myswap', sizeBytes: 16 * 4096 },
  );
  const l = Buffer.alloc(65536);
  l.write('LABELONE', 512, 'latin1');
  l.writeUInt32LE(32, 512 + 20);
  l.write('LVM2 001', 512 + 24, 'latin1');
  l.write('abcdef0123456789abcdef0123456789', 512 + 32, 'latin1');
  const lv = await probe(l);
  assert.equal(lv.type, 'LVM2_member');
  assert.equal(lv.uuid, 'abcdef-0123-4567-89ab-cdef-0123-456789');
  const k = Buffer.alloc(65536);
  k.write('LUKS\xba\xbe', 0, 'latin1');
  k.writeUInt16BE(2, 6);
  k.write('secret-label', 24);
  k.write('0d7a4e5c-7c4c-4d3c-9d0e-8a1b2c3d4e5f', 168, 'latin1');
  const lk = await probe(k);
  assert.deepEqual([lk.type, lk.version, lk.label, lk.uuid], ['crypto_LUKS', '2', 'secret-label', '0d7a4e5c-7c4c-4d3c-9d0e-8a1b2c3d4e5f']);
});

test('garbage and tiny inputs are unknown, never a throw', async () => {
  assert.equal((await probe(Buffer.alloc(100))).type, 'unknown');
  const g = Buffer.alloc(256 * 1024, 0x5a);
  assert.equal((await probe(g)).type, 'unknown');
  // NTFS signature with nonsense geometry: ntfs, with a note instead of a label
  const n = Buffer.alloc(65536);
  n.write('NTFS    ', 3, 'latin1');
  const fs = await probe(n);
  assert.equal(fs.type, 'ntfs');
  assert.match(fs.notes.join(), /implausible NTFS geometry/);
});
