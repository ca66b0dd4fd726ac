/**
 * extentOverlap: a filesystem's FIEMAP extents (offsets on its own device) mapped to the disk's
 * 512 KiB blocks through the partition's start, against the changed-block set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangedBlocks } from '../../../src/diff/changed-blocks.js';
import { extentOverlap } from '../../../src/diff/run-file-diff.js';

const KiB = 1024;
const MiB = 1024 * KiB;

test('extentOverlap: device offsets + partition start → disk blocks; an extent ending exactly at a block boundary stays in its block', () => {
  const changed = new ChangedBlocks();
  changed.add(3, 'both'); // disk bytes 1.5 MiB – 2 MiB
  const p1 = extentOverlap(changed, MiB); // partition at 1 MiB: its byte 0 is disk block 2
  assert.equal(p1([{ physical: 0, length: 512 * KiB }]), false, 'block 2 only');
  assert.equal(p1([{ physical: 512 * KiB - 4 * KiB, length: 4 * KiB }]), false, 'last 4 KiB of block 2');
  assert.equal(p1([{ physical: 512 * KiB, length: 4 * KiB }]), true, 'first 4 KiB of block 3');
  assert.equal(p1([{ physical: 0, length: 4 * KiB }, { physical: 700 * KiB, length: 8 * KiB }]), true, 'any extent counts');
  assert.equal(p1([]), false, 'no extents (empty file)');
  const bare = extentOverlap(changed, 0);
  assert.equal(bare([{ physical: 1.5 * MiB, length: 1 }]), true);
  assert.equal(bare([{ physical: 2 * MiB, length: 1 }]), false);
});
