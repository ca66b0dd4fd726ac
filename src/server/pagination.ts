/**
 * Pagination of block listings (ListSnapshotBlocks, ListChangedBlocks): pure functions over a
 * sorted array of block indexes.
 *
 * Contract:
 * - `pageOf(indexes, startIndex, maxResults, scanWindow)` returns the positions [from, to) of the
 *   page and the block index the next page starts at (null when no block is left). Indexes come
 *   out ascending and unique, never more than maxResults, and consecutive pages neither skip nor
 *   repeat a block.
 * - `scanWindow` > 0 imitates the service scanning a bounded range of the index space per request:
 *   a page then covers at most [startIndex, startIndex + scanWindow), so pages can be short or
 *   even empty while a next page exists (clients must keep paging until NextToken is absent).
 *   0 means unbounded: pages are short only at the end.
 * - `mergeSorted` / `unionSorted` build the sorted index sets the listings page over.
 */
export interface PageRange {
  from: number;
  to: number;
  nextIndex: number | null;
}

/** First position in `a` whose value is >= x. */
export function lowerBound(a: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function pageOf(indexes: ArrayLike<number>, startIndex: number, maxResults: number, scanWindow = 0): PageRange {
  if (!(maxResults >= 1)) throw new RangeError('maxResults must be >= 1');
  const from = lowerBound(indexes, startIndex);
  let to = Math.min(from + maxResults, indexes.length);
  let windowEnd = Infinity;
  if (scanWindow > 0) {
    windowEnd = startIndex + scanWindow;
    to = Math.min(to, lowerBound(indexes, windowEnd));
  }
  if (to >= indexes.length) return { from, to, nextIndex: null };
  const nextIndex = to - from === maxResults ? indexes[to]! : Math.min(windowEnd, indexes[to]!);
  return { from, to, nextIndex };
}

/** The sorted union of two sorted, unique index arrays. */
export function mergeSorted(a: ArrayLike<number>, b: ArrayLike<number>): Uint32Array {
  const out = new Uint32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x < y) {
      out[n++] = x;
      i++;
    } else if (y < x) {
      out[n++] = y;
      j++;
    } else {
      out[n++] = x;
      i++;
      j++;
    }
  }
  while (i < a.length) out[n++] = a[i++]!;
  while (j < b.length) out[n++] = b[j++]!;
  return n === out.length ? out : out.slice(0, n);
}

/** The sorted union of any number of (unsorted) collections of indexes. */
export function unionSorted(sets: Iterable<Iterable<number>>): Uint32Array {
  const all = new Set<number>();
  for (const s of sets) for (const i of s) all.add(i);
  const out = Uint32Array.from(all);
  out.sort();
  return out;
}

/** Sorted copy of the keys of a map of block index → anything. */
export function sortedKeys(m: Map<number, unknown>): Uint32Array {
  const out = Uint32Array.from(m.keys());
  out.sort();
  return out;
}
