/** Unit tests of listing pagination (src/server/pagination.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lowerBound, mergeSorted, pageOf, unionSorted } from '../../../src/server/pagination.js';

/** Pages through `indexes` the way a client does; returns every page's indexes. */
function pageAll(indexes: number[], max: number, window = 0, start = 0): number[][] {
  const pages: number[][] = [];
  let next: number | null = start;
  for (let guard = 0; next !== null; guard++) {
    assert.ok(guard < 100_000, 'paging does not terminate');
    const p = pageOf(indexes, next, max, window);
    pages.push(indexes.slice(p.from, p.to));
    if (p.nextIndex !== null) assert.ok(p.nextIndex > next || p.to > p.from, 'no progress');
    next = p.nextIndex;
  }
  return pages;
}

test('lowerBound finds the first index >= x', () => {
  const a = [1, 3, 5, 7];
  assert.equal(lowerBound(a, 0), 0);
  assert.equal(lowerBound(a, 1), 0);
  assert.equal(lowerBound(a, 2), 1);
  assert.equal(lowerBound(a, 7), 3);
  assert.equal(lowerBound(a, 8), 4);
  assert.equal(lowerBound([], 3), 0);
});

test('pages cover every index once, ascending, at most maxResults each', () => {
  const indexes = Array.from({ length: 1234 }, (_, i) => i * 3 + (i % 2));
  for (const max of [1, 100, 999, 1234, 10_000]) {
    const pages = pageAll(indexes, max);
    for (const p of pages) assert.ok(p.length <= max);
    assert.deepEqual(pages.flat(), indexes);
    // Only the last page may be short without a scan window.
    for (const p of pages.slice(0, -1)) assert.equal(p.length, max);
  }
});

test('no next page when the last page ends exactly at the last block', () => {
  const p = pageOf([1, 2, 3], 0, 3);
  assert.deepEqual(p, { from: 0, to: 3, nextIndex: null });
  assert.deepEqual(pageOf([], 0, 100), { from: 0, to: 0, nextIndex: null });
  assert.deepEqual(pageOf([5], 6, 100), { from: 1, to: 1, nextIndex: null });
});

test('a start index skips earlier blocks', () => {
  const indexes = [2, 4, 6, 8, 10];
  assert.deepEqual(pageAll(indexes, 2, 0, 5).flat(), [6, 8, 10]);
  assert.deepEqual(pageAll(indexes, 2, 0, 6).flat(), [6, 8, 10]);
  assert.deepEqual(pageAll(indexes, 2, 0, 11).flat(), []);
});

test('a scan window gives short and empty pages that still cover every index', () => {
  const indexes = [0, 1, 2, 5000, 5001, 90_000, 90_001, 90_002];
  const pages = pageAll(indexes, 100, 1000);
  assert.deepEqual(pages.flat(), indexes);
  assert.ok(pages.some((p) => p.length === 0), 'some page is empty');
  assert.ok(pages.filter((p) => p.length > 0).some((p) => p.length < 3));
  // Empty pages come with a next index beyond the window.
  const p = pageOf(indexes, 3, 100, 1000);
  assert.deepEqual(p, { from: 3, to: 3, nextIndex: 1003 });
  // maxResults still bounds a page inside the window.
  assert.deepEqual(pageOf(indexes, 0, 2, 1000), { from: 0, to: 2, nextIndex: 2 });
});

test('mergeSorted and unionSorted give sorted unique unions', () => {
  assert.deepEqual([...mergeSorted([1, 3, 5], [2, 3, 6])], [1, 2, 3, 5, 6]);
  assert.deepEqual([...mergeSorted([], [2])], [2]);
  assert.deepEqual([...mergeSorted([4], [])], [4]);
  assert.deepEqual([...unionSorted([[9, 1], new Set([3, 1]), [100_000_000]])], [1, 3, 9, 100_000_000]);
});
