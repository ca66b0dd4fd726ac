import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseVmRss, parseCpuTicks, mountsUnder, argMentionsPath, vmRssBytes, cpuSeconds } from '../../../scripts/bench/system.js';
import { benchSettings, MIB } from '../../../scripts/bench/settings.js';
import { spreadBlockIndexes, smallEntropyBlock } from '../../../scripts/bench/sparse-snapshot.js';
import { processStartTime } from '../../../scripts/bench/cleanup.js';

describe('bench /proc parsing', () => {
  test('parseVmRss reads kB into bytes', () => {
    assert.equal(parseVmRss('Name:\tnode\nVmRSS:\t  123456 kB\nVmSwap: 0 kB\n'), 123456 * 1024);
    assert.equal(parseVmRss('Name:\tkthreadd\n'), undefined);
  });
  test('parseCpuTicks sums utime and stime even with spaces and parens in the name', () => {
    const stat = '4242 (node (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 11 0 9999 0 0';
    assert.equal(parseCpuTicks(stat), 300);
  });
  test('our own process has RSS, CPU time and a start time', () => {
    assert.ok(vmRssBytes(process.pid)! > 1024 * 1024);
    assert.ok(cpuSeconds(process.pid)! >= 0);
    assert.match(processStartTime(process.pid)!, /^\d+$/);
    assert.equal(vmRssBytes(2 ** 22 + 12345), undefined);
  });
  test('mountsUnder lists mounts at or below a dir, deepest first, decoding escapes', () => {
    const info = [
      '22 1 0:21 / / rw - ext4 /dev/vda rw',
      '40 22 0:50 / /tmp/b/mnt rw - fuse.ebsmount ebsmount rw',
      '41 40 7:0 / /tmp/b/mnt/fs rw - ext4 /dev/loop0 ro',
      '42 22 0:51 / /tmp/bb rw - tmpfs tmpfs rw',
      '43 22 0:52 / /tmp/b/with\\040space rw - tmpfs tmpfs rw',
    ].join('\n');
    assert.deepEqual(mountsUnder(info, '/tmp/b'), ['/tmp/b/with space', '/tmp/b/mnt/fs', '/tmp/b/mnt']);
    assert.deepEqual(mountsUnder(info, '/tmp/x'), []);
  });
  test('argMentionsPath matches the path itself, things under it and option values, not prefixes', () => {
    assert.ok(argMentionsPath('/w/mnt-1', '/w/mnt-1'));
    assert.ok(argMentionsPath('/w/mnt-1/snap.img', '/w/mnt-1'));
    assert.ok(argMentionsPath('if=/w/mnt-1/snap.img', '/w/mnt-1'));
    assert.ok(argMentionsPath('--data=/w/mnt-1', '/w/mnt-1'));
    assert.ok(!argMentionsPath('/w/mnt-10', '/w/mnt-1'));
    assert.ok(!argMentionsPath('/x/w/mnt-1', '/w/mnt-1'));
  });
});

describe('bench settings', () => {
  test('defaults: 2 GiB image, 512 MiB cache, 0/20/100 ms, published to docs/bench', () => {
    const s = benchSettings({}, '/repo');
    assert.equal(s.imageBytes, 2048 * MIB);
    assert.equal(s.cacheBytes, 512 * MIB);
    assert.ok(s.warmCacheBytes >= s.imageBytes);
    assert.deepEqual(s.latenciesMs, [0, 20, 100]);
    assert.equal(s.outDir, '/repo/docs/bench');
    assert.equal(s.sparseVolumeGiB, 16384);
    assert.equal(s.sparseBlocks, 100_000);
    assert.equal(s.commitBytes, 1024 * MIB);
    // QD1 and QD32 reads fit in distinct blocks of the image.
    assert.ok(s.randomQd1Reads + s.randomQd32Jobs * s.randomQd32ReadsPerJob <= s.imageBytes / 524288);
  });
  test('quick and smaller runs stay out of docs/bench; knobs are validated', () => {
    const q = benchSettings({ BENCH_QUICK: '1' }, '/repo');
    assert.equal(q.imageBytes, 256 * MIB);
    assert.equal(q.outDir, '/repo/.bench');
    assert.ok(q.randomQd1Reads + q.randomQd32Jobs * q.randomQd32ReadsPerJob <= q.imageBytes / 524288);
    assert.equal(benchSettings({ BENCH_SIZE_MIB: '512' }, '/repo').outDir, '/repo/.bench');
    assert.equal(benchSettings({ BENCH_OUT: '/o' }, '/repo').outDir, '/o');
    assert.throws(() => benchSettings({ BENCH_SIZE_MIB: '100' }, '/repo'), /multiple of 64/);
    assert.throws(() => benchSettings({ BENCH_SIZE_MIB: '2G' }, '/repo'), /whole number/);
  });
});

describe('sparse snapshot layout', () => {
  test('blocks are spread over the whole volume, unique and in range', () => {
    const idx = spreadBlockIndexes(16384, 100_000);
    assert.equal(idx.length, 100_000);
    assert.equal(new Set(idx).size, 100_000);
    assert.equal(idx[0], 0);
    assert.ok(idx[idx.length - 1]! > 16384 * 2048 * 0.99 && idx[idx.length - 1]! < 16384 * 2048);
    assert.throws(() => spreadBlockIndexes(1, 2049), RangeError);
  });
  test('small-entropy blocks are full-size, distinct, and mostly zeros', () => {
    const a = Buffer.from(smallEntropyBlock(5));
    const b = smallEntropyBlock(6);
    assert.equal(a.length, 524288);
    assert.ok(!a.equals(b));
    assert.ok(a.toString('latin1', 0, 40).startsWith('ebsmount-bench sparse block 5\n'));
    assert.ok(a.subarray(64).every((x) => x === 0));
  });
});
