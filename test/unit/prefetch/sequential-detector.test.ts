import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { SequentialDetector, type PrefetchPlan } from '../../../src/prefetch/sequential-detector.js';

const PIECES_PER_BLOCK = 4; // 128 KiB reads of 512 KiB blocks

/** Feeds reads of whole blocks `from..to` as 128 KiB pieces; returns every plan, issuing all. */
function readBlocks(d: SequentialDetector, from: number, to: number): PrefetchPlan[] {
  const plans: PrefetchPlan[] = [];
  for (let b = from; b <= to; b++) {
    for (let piece = 0; piece < PIECES_PER_BLOCK; piece++) {
      const plan = d.onRead(b, b);
      if (plan) {
        plans.push(plan);
        d.issuedThrough(plan.stream, plan.end);
      }
    }
  }
  return plans;
}

describe('SequentialDetector', () => {
  test('no read-ahead until a few sequential blocks, then the window doubles to the cap', () => {
    const d = new SequentialDetector({ totalBlocks: 10_000, maxWindowBlocks: 64 });
    assert.deepEqual(readBlocks(d, 100, 101), [], 'two blocks are not enough');
    const plan = d.onRead(102, 102);
    assert.deepEqual(plan, { stream: 0, start: 103, end: 106 }, 'opens at 4 blocks');
    d.issuedThrough(plan!.stream, plan!.end);
    const windows: number[] = [];
    // Every further forward piece of the stream doubles the window, up to the cap.
    for (const b of [102, 102, 102, 103, 103, 103, 103, 104]) {
      const next = d.onRead(b, b);
      if (next) d.issuedThrough(next.stream, next.end);
      windows.push(d.windows()[0]!);
    }
    assert.deepEqual(windows, [8, 16, 32, 64, 64, 64, 64, 64]);
  });

  test('a reader re-reading behind its position does not grow the window', () => {
    const d = new SequentialDetector({ totalBlocks: 10_000, maxWindowBlocks: 64 });
    for (const b of [0, 1, 2]) d.onRead(b, b);
    assert.equal(d.windows()[0], 4);
    for (const b of [1, 0, 1]) assert.equal(d.onRead(b, b)?.start ?? 3, 3);
    assert.equal(d.windows()[0], 4);
  });

  test('plans never repeat blocks and never pass pos + cap', () => {
    const d = new SequentialDetector({ totalBlocks: 10_000, maxWindowBlocks: 16 });
    const plans = readBlocks(d, 0, 200);
    const seen = new Set<number>();
    for (const p of plans) {
      for (let i = p.start; i <= p.end; i++) {
        assert.ok(!seen.has(i), `block ${i} planned twice`);
        seen.add(i);
      }
    }
    assert.equal(Math.max(...seen), 200 + 16, 'ahead by exactly the cap');
    for (let i = 3; i <= 216; i++) assert.ok(seen.has(i), `block ${i} planned`);
  });

  test('plans stop at the last block of the volume', () => {
    const d = new SequentialDetector({ totalBlocks: 20, maxWindowBlocks: 64 });
    const plans = readBlocks(d, 0, 19);
    assert.equal(Math.max(...plans.map((p) => p.end)), 19);
  });

  test('a jump resets: no read-ahead until the new run is sequential again', () => {
    const d = new SequentialDetector({ totalBlocks: 100_000, maxWindowBlocks: 64 });
    readBlocks(d, 0, 20);
    assert.equal(d.windows()[0], 64);
    assert.equal(d.onRead(50_000, 50_000), null, 'jump: nothing planned');
    assert.equal(d.onRead(50_001, 50_001), null);
    const plan = d.onRead(50_002, 50_002);
    assert.deepEqual(plan && { start: plan.start, end: plan.end }, { start: 50_003, end: 50_006 }, 'restarts at 4');
  });

  test('random access never plans', () => {
    const d = new SequentialDetector({ totalBlocks: 1_000_000, maxWindowBlocks: 64 });
    for (let i = 0; i < 2_000; i++) {
      const b = (i * 7_919 * 13) % 1_000_000; // spread far apart
      assert.equal(d.onRead(b, b), null);
    }
  });

  test('small reorders and small gaps keep the stream', () => {
    const d = new SequentialDetector({ totalBlocks: 10_000, maxWindowBlocks: 64 });
    // pieces slightly out of order, as a loop device with two requests in flight sends them
    const order = [0, 1, 0, 2, 1, 3, 2, 4, 5, 4, 6, 8, 7, 9, 10, 12, 11, 13, 14, 16, 15];
    let planned = 0;
    for (const b of order) {
      const plan = d.onRead(b, b);
      if (plan) {
        planned += plan.end - plan.start + 1;
        d.issuedThrough(plan.stream, plan.end);
      }
    }
    assert.equal(d.windows().length, 1, 'one stream');
    assert.equal(d.windows()[0], 64);
    assert.ok(planned >= 64, `planned ${planned}`);
  });

  test('two interleaved sequential readers both get read-ahead', () => {
    const d = new SequentialDetector({ totalBlocks: 100_000, maxWindowBlocks: 32 });
    const planned = [new Set<number>(), new Set<number>()];
    const bases = [1_000, 60_000];
    for (let step = 0; step < 40; step++) {
      for (const [k, base] of bases.entries()) {
        const plan = d.onRead(base + step, base + step);
        if (plan) {
          for (let i = plan.start; i <= plan.end; i++) planned[k]!.add(i);
          d.issuedThrough(plan.stream, plan.end);
        }
      }
    }
    assert.deepEqual(d.windows(), [32, 32]);
    assert.ok(planned[0]!.has(1_000 + 39 + 32) && planned[1]!.has(60_000 + 39 + 32));
    assert.ok([...planned[0]!].every((i) => i > 1_000 && i < 2_000), 'stream A plans near A');
  });

  test('streams beyond the limit replace the least recently used', () => {
    const d = new SequentialDetector({ totalBlocks: 1_000_000, maxWindowBlocks: 8, maxStreams: 2 });
    readBlocks(d, 0, 10); // stream A active
    d.onRead(500_000, 500_000); // B
    d.onRead(900_000, 900_000); // C replaces A (least recently used)
    assert.equal(d.windows().length, 2);
    assert.equal(d.onRead(11, 11), null, 'A was forgotten');
  });

  test('issuedThrough short of the plan re-plans the rest on the next read', () => {
    const d = new SequentialDetector({ totalBlocks: 10_000, maxWindowBlocks: 8 });
    d.onRead(0, 0);
    d.onRead(1, 1);
    const plan = d.onRead(2, 2)!;
    assert.deepEqual({ start: plan.start, end: plan.end }, { start: 3, end: 6 });
    d.issuedThrough(plan.stream, 4); // budget was full after block 4
    const next = d.onRead(1, 1)!; // a piece behind: no growth, the rest of the plan again
    assert.deepEqual({ start: next.start, end: next.end }, { start: 5, end: 6 });
  });

  test('a zero cap disables read-ahead', () => {
    const d = new SequentialDetector({ totalBlocks: 10_000, maxWindowBlocks: 0 });
    assert.deepEqual(readBlocks(d, 0, 50), []);
  });
});
