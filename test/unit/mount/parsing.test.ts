/**
 * Pure parts of the mount code: mountinfo parsing, option parsing and validation, FUSE option
 * strings, paths, and the status cost estimate and table.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { findMountIn, isEbsmountEntry, parseMountinfo, unescapeMountPath } from '../../../src/mount/mountinfo.js';
import { parseLogLevel, parsePositiveInt, parseSize, parseTags } from '../../../src/mount/mount-options.js';
import { buildMountConfig } from '../../../src/mount/run-mount.js';
import { appendFuseOptions, expectedMountinfo, extraFuseOptions, FUSE_OP_TIMEOUT_MS, nativeFuseOptions } from '../../../src/fs/fuse-options.js';
import { READ_RETRY } from '../../../src/ebs/retry.js';
import { defaultLogFile, registryDir, stateDir } from '../../../src/mount/paths.js';
import { estimateCostUsd, formatStatusTable, requestCounts, statusJson } from '../../../src/mount/status-format.js';
import type { MountStatus } from '../../../src/mount/control-protocol.js';
import { UserError } from '../../../src/errors/user-error.js';

const MOUNTINFO = [
  '22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '42 22 0:39 / /tmp/with\\040space ro,nosuid,nodev,relatime shared:5 - fuse.ebsmount ebsmount:snap-0123456789abcdef0 ro,user_id=0,group_id=0,default_permissions,max_read=131072',
  '43 22 0:40 / /mnt/x rw - tmpfs tmpfs rw',
  '44 22 0:41 / /mnt/x rw - tmpfs tmpfs2 rw',
  '',
].join('\n');

describe('mountinfo', () => {
  test('parses fields, optional fields and escapes', () => {
    const e = parseMountinfo(MOUNTINFO);
    assert.equal(e.length, 4);
    assert.equal(e[1].mountpoint, '/tmp/with space');
    assert.equal(e[1].dev, '0:39');
    assert.equal(e[1].fstype, 'fuse.ebsmount');
    assert.equal(e[1].source, 'ebsmount:snap-0123456789abcdef0');
    assert.deepEqual(e[1].mountOptions, ['ro', 'nosuid', 'nodev', 'relatime']);
    assert.ok(e[1].superOptions.includes('max_read=131072'));
    assert.ok(isEbsmountEntry(e[1]));
    assert.ok(!isEbsmountEntry(e[0]));
    assert.equal(unescapeMountPath('a\\011b\\012c\\134d'), 'a\tb\nc\\d');
  });
  test('the last mount on a path wins (it is the visible one)', () => {
    assert.equal(findMountIn(parseMountinfo(MOUNTINFO), '/mnt/x')?.source, 'tmpfs2');
    assert.equal(findMountIn(parseMountinfo(MOUNTINFO), '/mnt'), undefined);
  });
});

describe('mount options', () => {
  test('sizes take bytes or binary suffixes', () => {
    assert.equal(parseSize('512M', 'cache-size'), 512 * 1024 ** 2);
    assert.equal(parseSize('512MiB', 'cache-size'), 512 * 1024 ** 2);
    assert.equal(parseSize('1G', 'cache-size'), 1024 ** 3);
    assert.equal(parseSize('1.5g', 'cache-size'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('64k', 'x'), 65536);
    assert.equal(parseSize(4096, 'x'), 4096);
    assert.equal(parseSize('0', 'x'), 0);
    for (const bad of ['', '12Q', '-1M', 'M', '1 G B']) assert.throws(() => parseSize(bad, 'cache-size'), UserError, bad);
  });
  test('integers, tags and log levels', () => {
    assert.equal(parsePositiveInt('64', 'max-concurrency'), 64);
    for (const bad of ['0', '-3', '1.5', 'x']) assert.throws(() => parsePositiveInt(bad, 'max-concurrency'), /positive integer/);
    assert.deepEqual(parseTags(['a=b', 'k=', 'x=y=z']), [{ key: 'a', value: 'b' }, { key: 'k', value: '' }, { key: 'x', value: 'y=z' }]);
    assert.deepEqual(parseTags(undefined), []);
    assert.deepEqual(parseTags('one=1'), [{ key: 'one', value: '1' }]);
    assert.throws(() => parseTags(['=v']), /key=value/);
    assert.throws(() => parseTags(['novalue']), /key=value/);
    assert.equal(parseLogLevel('DEBUG'), 'debug');
    assert.throws(() => parseLogLevel('loud'), UserError);
  });
  test('buildMountConfig: defaults, validation, writable-only options', () => {
    const c = buildMountConfig({ snapshot: 'snap-0123456789abcdef0', mountpoint: '/m' });
    assert.equal(c.cacheSizeBytes, 512 * 1024 ** 2);
    assert.equal(c.readAheadBytes, 32 * 1024 ** 2);
    assert.equal(c.maxConcurrency, 64);
    assert.equal(c.requestRate, 1000);
    assert.equal(c.uploadConcurrency, 64);
    assert.equal(c.writable, false);
    assert.equal(c.logFile, null);
    assert.throws(() => buildMountConfig({ snapshot: 'snap-1', mountpoint: '/m' }), /not a valid snapshot id/);
    assert.throws(() => buildMountConfig({ snapshot: 'snap-0123456789abcdef0', mountpoint: '/m', tag: ['a=b'] }), /only to --writable/);
    const w = buildMountConfig({ snapshot: 'snap-01234567', mountpoint: '/m', writable: true, tag: ['a=b'], description: 'd', cacheSize: '1G' });
    assert.deepEqual(w.tags, [{ key: 'a', value: 'b' }]);
    assert.equal(w.cacheSizeBytes, 1024 ** 3);
  });
});

describe('FUSE options', () => {
  const ro = { snapshotId: 'snap-0123456789abcdef0', writable: false, allowOther: false };
  const rw = { ...ro, writable: true, allowOther: true };
  test('read-only: kernel_cache (via the whitelist), no auto_cache, ro appended', () => {
    const n = nativeFuseOptions(ro);
    assert.equal(n.kernelCache, true);
    assert.equal(n.autoCache, false);
    assert.equal(n.maxRead, 131072);
    assert.equal(n.fsname, 'ebsmount:snap-0123456789abcdef0');
    assert.equal(n.subtype, 'ebsmount');
    assert.equal(n.defaultPermissions, true);
    assert.equal(n.allowOther, false);
    assert.deepEqual(extraFuseOptions(ro), ['ro']);
  });
  test('writable: big writes, no kernel_cache; allow_other when asked', () => {
    const n = nativeFuseOptions(rw);
    assert.equal(n.kernelCache, false);
    assert.equal(n.allowOther, true);
    assert.deepEqual(extraFuseOptions(rw), ['big_writes', 'max_write=1048576']);
    assert.ok(expectedMountinfo(rw).superOptions.includes('allow_other'));
    assert.deepEqual(expectedMountinfo(ro).mountOptions, ['ro']);
  });
  test('appending to fuse-native option strings', () => {
    assert.equal(appendFuseOptions('', ['a', 'b']), '-oa,b');
    assert.equal(appendFuseOptions('-ox,y', ['a']), '-ox,y,a');
    assert.equal(appendFuseOptions('-ox', []), '-ox');
  });
  test('the op timeout is above the read retry budget', () => {
    assert.ok(FUSE_OP_TIMEOUT_MS > READ_RETRY.budgetMs + 10_000);
  });
});

describe('paths', () => {
  test('state dir, registry dir and log file names', () => {
    assert.equal(stateDir({ XDG_STATE_HOME: '/s', HOME: '/h' }), '/s/ebsmount');
    assert.equal(stateDir({ HOME: '/h' }), '/h/.local/state/ebsmount');
    assert.equal(registryDir({ HOME: '/h' }, 0), '/run/ebsmount');
    assert.equal(registryDir({ HOME: '/h', XDG_RUNTIME_DIR: '/run/user/1000' }, 1000), '/run/user/1000/ebsmount');
    assert.equal(registryDir({ HOME: '/h' }, 1000), '/h/.local/state/ebsmount/run');
    assert.equal(registryDir({ EBSMOUNT_RUN_DIR: '/x' }, 0), '/x');
    assert.equal(defaultLogFile('snap-0123456789abcdef0', new Date('2026-01-02T03:04:05.678Z'), { HOME: '/h' }), '/h/.local/state/ebsmount/logs/snap-0123456789abcdef0-2026-01-02T030405Z.log');
  });
});

describe('status', () => {
  const status: MountStatus = {
    pid: 42, snapshotId: 'snap-0123456789abcdef0', mountpoint: '/m', imagePath: '/m/snap-0123456789abcdef0.img', volumeSizeGiB: 8,
    sizeBytes: 8 * 1024 ** 3, writable: true, allowOther: false, log: '/l.log', startedAt: new Date(0).toISOString(), uptimeSeconds: 3725,
    allocatedBlocks: 100, allocatedBlocksFinal: true, dirtyBlocks: 3, cacheSizeBytes: 512 * 1024 ** 2, cachedBytes: 1024 ** 2, openHandles: 0,
    state: 'mounted',
    stats: { 'ebs.get.requests': 2000, 'ebs.list.requests': 1000, 'ebs.put.requests': 1000, 'cache.hit': 3, 'cache.miss': 1, 'bytes.read': 2048 },
  };
  test('requests and their cost at list prices', () => {
    const r = requestCounts(status.stats);
    assert.deepEqual(r, { get: 2000, list: 1000, put: 1000 });
    const c = estimateCostUsd(r);
    assert.ok(Math.abs(c.get - 0.006) < 1e-12);
    assert.ok(Math.abs(c.list - 0.0006) < 1e-12);
    assert.ok(Math.abs(c.put - 0.006) < 1e-12);
    assert.ok(Math.abs(c.total - 0.0126) < 1e-12);
    assert.equal(statusJson(status).requests.get, 2000);
  });
  test('the table shows every figure', () => {
    const t = formatStatusTable(status);
    for (const re of [/snapshot\s+snap-0123456789abcdef0/, /volume size\s+8 GiB/, /mode\s+writable/, /dirty blocks\s+3/, /cache\s+3 hits, 1 misses \(75\.0% hits\)/,
      /requests\s+2000 get, 1000 list, 1000 put/, /estimated cost\s+\$0\.0126/, /uptime\s+1h 2m 5s/, /bytes read\s+2\.00 KiB/]) {
      assert.match(t, re);
    }
  });
});
