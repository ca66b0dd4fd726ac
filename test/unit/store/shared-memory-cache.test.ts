import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { SharedMemoryCache } from '../../../src/store/shared-memory-cache.js';

const block = (b: number) => Buffer.alloc(BLOCK_SIZE, b);

describe('SharedMemoryCache', () => {
  test('views share one byte bound, keep their own keys, and hear of their own evictions', () => {
    const shared = new SharedMemoryCache(4 * BLOCK_SIZE);
    const goneA: number[] = [];
    const goneB: number[] = [];
    const a = shared.view((i) => goneA.push(i));
    const b = shared.view((i) => goneB.push(i));
    a.set(7, block(1));
    b.set(7, block(2));
    assert.equal(a.get(7)![0], 1);
    assert.equal(b.get(7)![0], 2, 'the same index in two volumes: two entries');
    a.set(8, block(3));
    a.set(9, block(4));
    assert.equal(shared.calculatedSize, 4 * BLOCK_SIZE);
    a.set(10, block(5));
    assert.ok(shared.calculatedSize <= 4 * BLOCK_SIZE);
    assert.equal(goneA.length + goneB.length, 1);
    assert.equal(a.size + b.size, 4);
    assert.equal(a.calculatedSize + b.calculatedSize, shared.calculatedSize);
    b.clear();
    assert.equal(b.size, 0);
    assert.equal(b.has(7), false);
    assert.ok(a.has(10), 'clearing one view leaves the others');
    assert.equal(a.maxSize, 4 * BLOCK_SIZE);
  });
});
