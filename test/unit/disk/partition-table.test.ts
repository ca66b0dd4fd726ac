/**
 * The partition-table parser on synthetic disks: GPT (CRCs, backup fallback, hybrid MBR), MBR
 * with an extended partition and logicals, and malformed tables — overlaps, entries past the
 * disk's end, EBR loops, absurd entry counts, garbage — each a note, never a throw or a hang.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { bufferSource, type ByteSource } from '../../../src/disk/byte-source.js';
import { readPartitionTable } from '../../../src/disk/partition-table.js';
import { inspectDisk } from '../../../src/disk/inspect-disk.js';
import { MAX_LOGICAL_PARTITIONS } from '../../../src/disk/mbr.js';
import { prng } from '../../../src/util/prng.js';
import { BIOS, EFI, LINUX, resealHeader, writeExtSuperblock, writeGpt, writeMbrEntries } from './fixtures.js';

const MiB = 1024 * 1024;

function disk(mib = 8): Buffer {
  return Buffer.alloc(mib * MiB);
}

/** A source that records every byte range read (to prove what the parser touches). */
function recording(buf: Buffer): ByteSource & { reads: [number, number][] } {
  const inner = bufferSource(buf);
  const reads: [number, number][] = [];
  return { sizeBytes: inner.sizeBytes, reads, read: (o, l) => (reads.push([o, l]), inner.read(o, l)) };
}

function threePartGpt(d: Buffer) {
  writeGpt(d, {
    entries: [
      { index: 0, type: LINUX, first: 2048, last: 6143, name: 'root' },
      { index: 13, type: BIOS, first: 6144, last: 8191, name: 'bios' },
      { index: 14, type: EFI, first: 8192, last: 12287, name: 'EFI System' },
    ],
  });
}

describe('GPT', () => {
  test('entries, numbers, names, types, unique GUIDs; reads only sector 0, the header and the entries', async () => {
    const d = disk();
    threePartGpt(d);
    const src = recording(d);
    const t = await readPartitionTable(src);
    assert.equal(t.scheme, 'gpt');
    assert.deepEqual(t.notes, []);
    assert.deepEqual(t.partitions.map((p) => [p.number, p.firstLba, p.lastLba, p.name, p.typeName]), [
      [1, 2048, 6143, 'root', 'Linux filesystem'],
      [14, 6144, 8191, 'bios', 'BIOS boot partition'],
      [15, 8192, 12287, 'EFI System', 'EFI system partition'],
    ]);
    assert.equal(t.partitions[0]!.startBytes, 2048 * 512);
    assert.equal(t.partitions[0]!.sizeBytes, 4096 * 512);
    assert.equal(t.partitions[0]!.type, LINUX);
    assert.equal(t.partitions[2]!.uuid, '00000000-0000-0000-0000-000000000015');
    assert.equal(t.gpt?.header, 'primary');
    assert.equal(t.gpt?.diskGuid, '11111111-2222-3333-4444-555555555555');
    assert.ok(src.reads.every(([o, l]) => o + l <= 34 * 512), `reads: ${JSON.stringify(src.reads)}`);
  });

  for (const [what, damage] of [
    ['zeroed primary header', (d: Buffer) => d.fill(0, 512, 1024)],
    ['primary header CRC', (d: Buffer) => (d[512 + 40] ^= 1)],
    ['primary entry array CRC', (d: Buffer) => (d[2 * 512 + 40] ^= 1)],
    ['absurd entry count', (d: Buffer) => (d.writeUInt32LE(4_000_000, 512 + 80), resealHeader(d))],
    ['entry size 7', (d: Buffer) => (d.writeUInt32LE(7, 512 + 84), resealHeader(d))],
    ['header size 4 GiB', (d: Buffer) => d.writeUInt32LE(0xffffffff, 512 + 12)],
  ] as const) {
    test(`${what}: the backup GPT is used, and the note says so`, async () => {
      const d = disk();
      threePartGpt(d);
      damage(d);
      const t = await readPartitionTable(bufferSource(d));
      assert.equal(t.scheme, 'gpt');
      assert.equal(t.gpt?.header, 'backup');
      assert.deepEqual(t.partitions.map((p) => p.number), [1, 14, 15]);
      assert.equal(t.notes.length, 1);
      assert.match(t.notes[0]!, /primary GPT header at LBA 1 is damaged \(.+\): using the backup GPT at LBA 16383/);
    });
  }

  test('a disk larger than the table was written for: the backup is found at the protective MBR entry\'s end', async () => {
    const small = disk();
    threePartGpt(small);
    small.fill(0, 512, 1024);
    const big = Buffer.concat([small, Buffer.alloc(8 * MiB)]);
    const t = await readPartitionTable(bufferSource(big));
    assert.equal(t.gpt?.header, 'backup');
    assert.deepEqual(t.partitions.map((p) => p.number), [1, 14, 15]);
    assert.match(t.notes[0]!, /using the backup GPT at LBA 16383/);
  });

  test('both headers damaged: no partitions, one note with both reasons', async () => {
    const d = disk();
    threePartGpt(d);
    d[512 + 40] ^= 1;
    d.fill(0, d.length - 512);
    const t = await readPartitionTable(bufferSource(d));
    assert.equal(t.scheme, 'none');
    assert.deepEqual(t.partitions, []);
    assert.match(t.notes.join('\n'), /no usable GPT: primary header at LBA 1: header CRC32 mismatch; backup at LBA 16383: no "EFI PART" signature/);
  });

  test('entries past the disk end and inverted entries are left out; overlaps and out-of-range entries noted', async () => {
    const d = disk();
    writeGpt(d, {
      entries: [
        { index: 0, type: LINUX, first: 2048, last: 6143 },
        { index: 1, type: LINUX, first: 4096, last: 8191 },
        { index: 2, type: LINUX, first: 10_000, last: 99_999 },
        { index: 3, type: LINUX, first: 9000, last: 8999 },
        { index: 4, type: LINUX, first: 1, last: 100 },
      ],
    });
    const t = await readPartitionTable(bufferSource(d));
    assert.deepEqual(t.partitions.map((p) => p.number), [1, 2, 5]);
    const notes = t.notes.join('\n');
    assert.match(notes, /GPT entry 3 \(sectors 10000–99999\) ends past the disk's end \(16384 sectors\): ignored/);
    assert.match(notes, /GPT entry 4: last LBA 8999 is before first LBA 9000: ignored/);
    assert.match(notes, /GPT entry 5 \(sectors 1–100\) lies outside the usable range/);
    assert.match(notes, /partitions 1 and 2 overlap \(sectors 4096–6143\)/);
  });

  test('hybrid MBR: the GPT wins, noted', async () => {
    const d = disk();
    threePartGpt(d);
    writeMbrEntries(d, 0, [
      { slot: 1, type: 0xee, first: 1, sectors: 2047 },
      { slot: 2, type: 0x83, first: 2048, sectors: 4096 },
    ]);
    const t = await readPartitionTable(bufferSource(d));
    assert.equal(t.scheme, 'gpt');
    assert.equal(t.gpt?.hybridMbr, true);
    assert.deepEqual(t.partitions.map((p) => p.number), [1, 14, 15]);
    assert.match(t.notes.join('\n'), /hybrid MBR: 1 MBR entry besides the protective one; the GPT is used/);
  });

  test('a GPT without a protective MBR is still read (noted)', async () => {
    const d = disk();
    threePartGpt(d);
    d.fill(0, 0, 512);
    const t = await readPartitionTable(bufferSource(d));
    assert.equal(t.scheme, 'gpt');
    assert.equal(t.gpt?.protectiveMbr, false);
    assert.match(t.notes[0]!, /no protective MBR/);
  });
});

describe('MBR', () => {
  /** primary 1, extended 2 with logicals 5 and 6 (EBR links relative to the extended start). */
  function mbrWithLogicals(d: Buffer): void {
    writeMbrEntries(d, 0, [
      { slot: 1, type: 0x83, first: 2048, sectors: 2048, status: 0x80 },
      { slot: 2, type: 0x05, first: 4096, sectors: 8192 },
    ]);
    writeMbrEntries(d, 4096, [
      { slot: 1, type: 0x83, first: 2048, sectors: 2048 },
      { slot: 2, type: 0x05, first: 4096, sectors: 4096 },
    ]);
    writeMbrEntries(d, 8192, [{ slot: 1, type: 0x07, first: 2048, sectors: 2048 }]);
  }

  test('primary, extended and two logicals numbered 5 and 6 at the right offsets', async () => {
    const d = disk();
    mbrWithLogicals(d);
    const t = await readPartitionTable(bufferSource(d));
    assert.equal(t.scheme, 'mbr');
    assert.deepEqual(t.notes, []);
    assert.deepEqual(t.partitions.map((p) => [p.number, p.kind, p.firstLba, p.sectors, p.type]), [
      [1, 'primary', 2048, 2048, '0x83'],
      [2, 'extended', 4096, 8192, '0x05'],
      [5, 'logical', 6144, 2048, '0x83'],
      [6, 'logical', 10240, 2048, '0x07'],
    ]);
    assert.equal(t.partitions[0]!.bootable, true);
  });

  test('an EBR chain that loops ends with a note (no hang)', async () => {
    const d = disk();
    mbrWithLogicals(d);
    writeMbrEntries(d, 8192, [
      { slot: 1, type: 0x07, first: 2048, sectors: 2048 },
      { slot: 2, type: 0x05, first: 0, sectors: 4096 },
    ]);
    const t = await readPartitionTable(bufferSource(d));
    assert.deepEqual(t.partitions.map((p) => p.number), [1, 2, 5, 6]);
    assert.match(t.notes.join('\n'), /loops back to the EBR at sector 4096/);
  });

  test(`a chain longer than ${MAX_LOGICAL_PARTITIONS} EBRs is cut with a note`, async () => {
    const d = disk(16);
    writeMbrEntries(d, 0, [{ slot: 1, type: 0x0f, first: 2048, sectors: 30_000 }]);
    for (let i = 0; i < 300; i++) {
      const ebr = 2048 + i * 64;
      writeMbrEntries(d, ebr, [
        { slot: 1, type: 0x83, first: 1, sectors: 32 },
        { slot: 2, type: 0x05, first: (i + 1) * 64, sectors: 64 },
      ]);
    }
    const t = await readPartitionTable(bufferSource(d));
    assert.equal(t.partitions.filter((p) => p.kind === 'logical').length, MAX_LOGICAL_PARTITIONS);
    assert.match(t.notes.join('\n'), /longer than 256 EBRs/);
  });

  test('entries past the disk end are left out; overlapping primaries noted', async () => {
    const d = disk();
    writeMbrEntries(d, 0, [
      { slot: 1, type: 0x83, first: 2048, sectors: 4096 },
      { slot: 2, type: 0x83, first: 4096, sectors: 4096 },
      { slot: 3, type: 0x83, first: 8192, sectors: 0xfffffff0 },
    ]);
    const t = await readPartitionTable(bufferSource(d));
    assert.deepEqual(t.partitions.map((p) => p.number), [1, 2]);
    assert.match(t.notes.join('\n'), /MBR entry 3 .* ends past the disk's end/);
    assert.match(t.notes.join('\n'), /partitions 1 and 2 overlap \(sectors 4096–6143\)/);
  });

  test('an EBR without signature or outside its extended partition ends the chain with a note', async () => {
    const d = disk();
    mbrWithLogicals(d);
    d[8192 * 512 + 510] = 0;
    let t = await readPartitionTable(bufferSource(d));
    assert.deepEqual(t.partitions.map((p) => p.number), [1, 2, 5]);
    assert.match(t.notes.join('\n'), /EBR at sector 8192 has no 0x55AA signature/);
    mbrWithLogicals(d);
    writeMbrEntries(d, 4096, [
      { slot: 1, type: 0x83, first: 2048, sectors: 2048 },
      { slot: 2, type: 0x05, first: 100_000, sectors: 4096 },
    ]);
    t = await readPartitionTable(bufferSource(d));
    assert.match(t.notes.join('\n'), /outside the extended partition/);
  });
});

describe('no table', () => {
  test('a bare ext4 disk: no table, no notes, the filesystem probed on the whole disk', async () => {
    const d = disk();
    writeExtSuperblock(d, 0, { label: 'data', uuid: 'aabbccdd-eeff-0011-2233-445566778899' });
    const r = await inspectDisk(bufferSource(d));
    assert.equal(r.table.scheme, 'none');
    assert.deepEqual(r.table.notes, []);
    assert.equal(r.bare?.type, 'ext4');
    assert.equal(r.bare?.label, 'data');
    assert.equal(r.bare?.uuid, 'aabbccdd-eeff-0011-2233-445566778899');
  });

  test('a FAT boot sector (0x55AA too) is a bare filesystem, not an MBR', async () => {
    const d = disk();
    d[0] = 0xeb;
    d.write('FAT16   ', 0x36, 'latin1');
    d.writeUInt16LE(512, 0x0b);
    d.writeUInt16LE(16384, 0x13);
    writeMbrEntries(d, 0, []);
    d.writeUInt32LE(0x12345678, 0x1be + 8); // bytes of the FAT boot code where an entry would be
    const r = await inspectDisk(bufferSource(d));
    assert.equal(r.table.scheme, 'none');
    assert.equal(r.bare?.type, 'vfat');
  });

  test('an all-zero disk: no table, unknown filesystem', async () => {
    const r = await inspectDisk(bufferSource(disk(1)));
    assert.equal(r.table.scheme, 'none');
    assert.equal(r.bare?.type, 'unknown');
  });
});

test('fuzz: 300 random tables (MBR and GPT shaped garbage) never throw and always finish', async () => {
  const rand = prng(7);
  for (let i = 0; i < 300; i++) {
    const d = disk(2);
    for (let j = 0; j < 34 * 512; j++) d[j] = Math.floor(rand() * 256);
    d[510] = 0x55;
    d[511] = 0xaa;
    if (i % 2 === 0) {
      d[0x1be] = 0;
      d[0x1be + 4] = 0xee;
      d.write('EFI PART', 512, 'latin1');
      if (i % 4 === 0) resealHeader(d);
    } else {
      for (let s = 0; s < 4; s++) d[0x1be + s * 16] = 0;
      d[0x1be + 4] = 0x05;
    }
    const t = await readPartitionTable(bufferSource(d));
    assert.ok(['gpt', 'mbr', 'none'].includes(t.scheme));
    for (const p of t.partitions) assert.ok(p.lastLba < d.length / 512 && p.firstLba <= p.lastLba);
    await inspectDisk(bufferSource(d));
  }
});
