/**
 * mount.ebsmount's option mapping (fstab → ebsmount mount flags) and mount(8)'s helper argv.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstabToMountArgs, parseHelperArgv, splitOptions } from '../../../src/mount/fstab-options.js';

test('the README example maps to --cache-size; systemd and mount(8) options are ignored', () => {
  assert.deepEqual(fstabToMountArgs(splitOptions('ro,cache-size=1G,_netdev')), ['--cache-size', '1G']);
  assert.deepEqual(fstabToMountArgs(splitOptions('defaults,noauto,nofail,x-systemd.automount,nodev,nosuid,noexec,comment=x')), []);
});

test('rw, flags and every value option', () => {
  assert.deepEqual(
    fstabToMountArgs(splitOptions('rw,allow_other,discard,no-partitions,endpoint=http://127.0.0.1:9000,region=eu-west-1,tag=a=b,tag=c=d,journal-dir=/var/j')),
    ['--writable', '--allow-other', '--discard', '--no-partitions', '--endpoint', 'http://127.0.0.1:9000', '--region', 'eu-west-1', '--tag', 'a=b', '--tag', 'c=d', '--journal-dir', '/var/j'],
  );
});

test('unknown options are an error naming them, unless sloppy (-s)', () => {
  assert.throws(() => fstabToMountArgs(['bogus']), /unknown mount option 'bogus'/);
  assert.throws(() => fstabToMountArgs(['cache-size']), /unknown mount option 'cache-size'/);
  assert.deepEqual(fstabToMountArgs(['bogus', 'cache-size=2G'], { sloppy: true }), ['--cache-size', '2G']);
});

test("mount(8)'s calling convention", () => {
  assert.deepEqual(parseHelperArgv(['snap-1', '/mnt/x', '-o', 'ro,cache-size=1G']), { spec: 'snap-1', dir: '/mnt/x', options: ['ro', 'cache-size=1G'], sloppy: false, fake: false });
  assert.deepEqual(parseHelperArgv(['-sfn', 'snap-1', '/mnt/x', '-oro', '-t', 'fuse.ebsmount']), { spec: 'snap-1', dir: '/mnt/x', options: ['ro'], sloppy: true, fake: true });
  assert.throws(() => parseHelperArgv(['snap-1']), /usage: mount\.ebsmount/);
});
