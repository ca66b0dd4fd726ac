import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { percentile, median, upstreamCeiling, percentOf, statValue, counterValue, mbPerSecond } from '../../../scripts/bench/stats.js';

describe('bench stats', () => {
  test('percentile interpolates between closest ranks and ignores input order', () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
    assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
    assert.equal(percentile([10, 20], 0), 10);
    assert.equal(percentile([10, 20], 100), 20);
    assert.ok(Math.abs(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99) - 9.91) < 1e-9);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile([1], 101), RangeError);
    assert.equal(median([7, 1, 3]), 3);
  });

  test('upstream ceiling is bounded by the rate limit and by concurrency over latency', () => {
    // 1000 requests/s × 512 KiB
    assert.equal(upstreamCeiling({ rateLimit: 1000, concurrency: 64, latencyMs: 0 }), 1000 * 524288);
    assert.equal(upstreamCeiling({ rateLimit: 1000, concurrency: 64, latencyMs: 20 }), 1000 * 524288);
    // 64 × 512 KiB / 0.1 s = 640 blocks/s
    assert.equal(upstreamCeiling({ rateLimit: 1000, concurrency: 64, latencyMs: 100 }), 640 * 524288);
    assert.equal(upstreamCeiling({ rateLimit: 10, concurrency: 4, latencyMs: 100, blockSize: 1000 }), 10 * 1000);
  });

  test('rates and percentages', () => {
    assert.equal(mbPerSecond(2e6, 2), 1);
    assert.ok(Number.isNaN(mbPerSecond(1, 0)));
    assert.equal(percentOf(50, 200), 25);
    assert.ok(Number.isNaN(percentOf(undefined, 3)));
    assert.ok(Number.isNaN(percentOf(1, 0)));
  });

  test('statValue finds a counter in flat, nested and wrapped status documents', () => {
    assert.equal(statValue({ 'ebs.get.requests': 12 }, 'ebs.get.requests'), 12);
    assert.equal(statValue({ ebs: { get: { requests: 7 } } }, 'ebs.get.requests'), 7);
    assert.equal(statValue({ stats: { 'cache.hit': 3 }, pid: 9 }, 'cache.hit'), 3);
    assert.equal(statValue({ stats: { cache: { hit: 4 } } }, 'cache.hit'), 4);
    assert.equal(statValue({ stats: {} }, 'cache.hit'), undefined);
    assert.equal(statValue({ 'cache.hit': '3' }, 'cache.hit'), undefined);
    assert.equal(statValue(null, 'cache.hit'), undefined);
  });
  test('counterValue reads an absent counter of a stats document as 0, a missing document as undefined', () => {
    assert.equal(counterValue({ stats: { 'ebs.get.requests': 5 } }, 'ebs.get.requests'), 5);
    assert.equal(counterValue({ stats: { 'cache.hit': 1 } }, 'ebs.get.requests'), 0);
    assert.equal(counterValue({ stats: { 'ebs.get.requests': 'x' } }, 'ebs.get.requests'), undefined);
    assert.equal(counterValue(undefined, 'ebs.get.requests'), undefined);
    assert.equal(counterValue({ pid: 3 }, 'ebs.get.requests'), undefined);
  });
});
