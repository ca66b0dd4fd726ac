import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestLimiter } from '../../../src/ebs/limiter.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test('never runs more than maxConcurrency at once', async () => {
  const limiter = new RequestLimiter({ maxConcurrency: 3 });
  let running = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: 20 }, () =>
      limiter.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 2));
        running--;
      }),
    ),
  );
  assert.equal(peak, 3);
});

test('queued demand work starts before queued background work', async () => {
  const limiter = new RequestLimiter({ maxConcurrency: 1 });
  const gate = deferred();
  const order: string[] = [];
  const first = limiter.run(() => gate.promise);
  const bg = limiter.run(async () => void order.push('background'), 'background');
  const demand = limiter.run(async () => void order.push('demand'));
  gate.resolve();
  await Promise.all([first, bg, demand]);
  assert.deepEqual(order, ['demand', 'background']);
});

test('background work holds at most backgroundCap slots', async () => {
  const limiter = new RequestLimiter({ maxConcurrency: 4 });
  limiter.setBackgroundCap(1);
  const gate = deferred();
  let bgRunning = 0;
  let peak = 0;
  const jobs = Array.from({ length: 5 }, () =>
    limiter.run(async () => {
      bgRunning++;
      peak = Math.max(peak, bgRunning);
      await gate.promise;
      bgRunning--;
    }, 'background'),
  );
  let demandRan = false;
  await limiter.run(async () => void (demandRan = true));
  assert.ok(demandRan, 'a demand read finds a free slot while background work waits');
  gate.resolve();
  await Promise.all(jobs);
  assert.equal(peak, 1);
});

test('paces starts to ratePerSecond after the burst', async () => {
  const limiter = new RequestLimiter({ maxConcurrency: 10, ratePerSecond: 100 });
  const starts: number[] = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 30 }, () => limiter.run(async () => void starts.push(performance.now() - t0))));
  // burst of 10, then 20 more at 100/s: about 200 ms
  const elapsed = Math.max(...starts);
  assert.ok(elapsed >= 150, `30 starts at 100/s with burst 10 took ${elapsed.toFixed(0)} ms`);
});

test('a throwing function frees its slot and rejects its caller', async () => {
  const limiter = new RequestLimiter({ maxConcurrency: 1 });
  await assert.rejects(limiter.run(async () => { throw new Error('x'); }), /x/);
  await assert.rejects(limiter.run(() => { throw new Error('sync'); }), /sync/);
  assert.equal(await limiter.run(async () => 7), 7);
  assert.equal(limiter.inFlight, 0);
});
