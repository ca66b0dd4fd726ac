/** Unit tests of the server's fault injection (src/server/faults.ts) with a fake clock and PRNG. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Faults, NO_FAULTS } from '../../../src/server/faults.js';
import { ApiError } from '../../../src/server/wire.js';

function type(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof ApiError);
    return `${err.type}/${err.status}`;
  }
}

test('the rate limit is a token bucket per snapshot', () => {
  const clock = { t: 0 };
  const f = new Faults({ ...NO_FAULTS, rateLimit: 10 }, Math.random, () => clock.t);
  for (let i = 0; i < 10; i++) assert.equal(type(() => f.admit('snap-a')), undefined);
  assert.equal(type(() => f.admit('snap-a')), 'RequestThrottledException/400');
  assert.equal(type(() => f.admit('snap-b')), undefined, 'another snapshot has its own bucket');
  clock.t += 100; // refills 1 token per 100 ms
  assert.equal(type(() => f.admit('snap-a')), undefined);
  assert.equal(type(() => f.admit('snap-a')), 'RequestThrottledException/400');
  clock.t += 5000; // capped at one second's worth
  let ok = 0;
  for (let i = 0; i < 30; i++) if (type(() => f.admit('snap-a')) === undefined) ok++;
  assert.equal(ok, 10);
  assert.equal(f.counts.rateLimited, 2 + 20);
});

test('throttle and error rates follow the PRNG', () => {
  const seq = [0.1, 0.9, 0.9, 0.9, 0.1];
  let k = 0;
  const f = new Faults({ ...NO_FAULTS, throttleRate: 0.5, errorRate: 0.5 }, () => seq[k++ % seq.length]!);
  assert.equal(type(() => f.admit('s')), 'RequestThrottledException/400'); // 0.1 < 0.5
  assert.equal(type(() => f.admit('s')), undefined); // 0.9, 0.9
  assert.equal(type(() => f.admit('s')), 'InternalServerException/500'); // 0.9, then 0.1
  assert.deepEqual([f.counts.throttled, f.counts.errors], [1, 1]);
});

test('no faults: nothing is delayed, throttled or corrupted', () => {
  const f = new Faults(NO_FAULTS);
  assert.equal(f.delayMs(), 0);
  for (let i = 0; i < 1000; i++) f.admit('x');
  const b = Buffer.alloc(64);
  assert.equal(f.maybeCorrupt(b), false);
  assert.ok(b.equals(Buffer.alloc(64)));
});

test('latency adds a jitter in [0, jitter)', () => {
  let r = 0;
  const f = new Faults({ ...NO_FAULTS, latencyMs: 100, latencyJitterMs: 50 }, () => r);
  assert.equal(f.delayMs(), 100);
  r = 0.5;
  assert.equal(f.delayMs(), 125);
});

test('corruption changes the bytes', () => {
  const f = new Faults({ ...NO_FAULTS, corruptRate: 1 });
  const b = Buffer.alloc(524288, 3);
  assert.equal(f.maybeCorrupt(b), true);
  assert.ok(!b.equals(Buffer.alloc(524288, 3)));
  assert.equal(f.counts.corrupted, 1);
});
