import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, withRetry, READ_RETRY, WRITE_RETRY, type RetryPolicy } from '../../../src/ebs/retry.js';
import { EbsError, retryKind } from '../../../src/ebs/errors.js';

const policy: RetryPolicy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000, budgetMs: 10_000 };

test('backoff grows exponentially up to the cap, with jitter inside it', () => {
  assert.equal(backoffDelay(1, policy, 'transient', () => 1), 100);
  assert.equal(backoffDelay(2, policy, 'transient', () => 1), 200);
  assert.equal(backoffDelay(3, policy, 'transient', () => 1), 400);
  assert.equal(backoffDelay(10, policy, 'transient', () => 1), 1_000);
  assert.equal(backoffDelay(3, policy, 'transient', () => 0), 0, 'full jitter reaches zero');
  assert.equal(backoffDelay(3, policy, 'throttle', () => 0), 200, 'throttling waits at least half the cap');
  assert.equal(backoffDelay(1, policy, 'token', () => 1), 0, 'first token refresh retries at once');
  assert.ok(backoffDelay(2, policy, 'token', () => 1) > 0);
});

test('READ_RETRY (≤ 50 s) ends well before the 80 s FUSE op timeout; WRITE_RETRY covers the ~2 min "does not exist" window', () => {
  assert.ok(READ_RETRY.budgetMs <= 50_000);
  assert.ok(WRITE_RETRY.budgetMs >= 150_000);
  let total = 0;
  for (let a = 1; a < WRITE_RETRY.maxAttempts; a++) total += backoffDelay(a, WRITE_RETRY, 'not-yet', () => 1);
  assert.ok(total >= 150_000, `max waits add up to ${total} ms`);
});

test('retries transient errors and returns the first success', async () => {
  const sleeps: number[] = [];
  let calls = 0;
  const result = await withRetry(
    async () => {
      calls++;
      if (calls < 3) throw new EbsError('InternalServerException', 'boom', { status: 500 });
      return 'ok';
    },
    { policy, classify: (e) => retryKind(e), sleep: async (ms) => void sleeps.push(ms), random: () => 0.5 },
  );
  assert.equal(result, 'ok');
  assert.equal(calls, 3);
  assert.deepEqual(sleeps, [50, 100]);
});

test('never retries fatal errors and rethrows the original error', async () => {
  const denied = new EbsError('AccessDeniedException', 'no', { status: 403 });
  let calls = 0;
  await assert.rejects(
    withRetry(async () => { calls++; throw denied; }, { policy, classify: (e) => retryKind(e), sleep: async () => {} }),
    (e) => e === denied,
  );
  assert.equal(calls, 1);
});

test('stops after maxAttempts', async () => {
  let calls = 0;
  await assert.rejects(
    withRetry(async () => { calls++; throw new EbsError('RequestThrottledException', 'slow', { status: 400 }); }, {
      policy, classify: (e) => retryKind(e), sleep: async () => {},
    }),
    /slow/,
  );
  assert.equal(calls, policy.maxAttempts);
});

test('stops when the next wait would pass the time budget', async () => {
  let clock = 0;
  let calls = 0;
  await assert.rejects(
    withRetry(async () => { calls++; clock += 4_000; throw new EbsError('NetworkError', 'reset'); }, {
      policy: { ...policy, maxAttempts: 100, budgetMs: 8_200 }, classify: (e) => retryKind(e),
      sleep: async (ms) => { clock += ms; }, now: () => clock, random: () => 1,
    }),
    /reset/,
  );
  assert.equal(calls, 2, 'third attempt would start after the budget');
});

test('beforeRetry runs before the next attempt with the kind (token refresh)', async () => {
  const seen: string[] = [];
  let token = 'old';
  const out = await withRetry(
    async () => {
      if (token === 'old') throw new EbsError('ValidationException', 'bad token', { status: 400, reason: 'INVALID_BLOCK_TOKEN' });
      return token;
    },
    { policy, classify: (e) => retryKind(e), sleep: async () => {}, beforeRetry: (kind) => { seen.push(kind); token = 'new'; } },
  );
  assert.equal(out, 'new');
  assert.deepEqual(seen, ['token']);
});

test('an abort during the wait ends the retries with the last error', async () => {
  const ac = new AbortController();
  const p = withRetry(async () => { throw new EbsError('InternalServerException', 'down', { status: 500 }); }, {
    policy: { ...policy, baseDelayMs: 10_000, maxDelayMs: 10_000 }, classify: (e) => retryKind(e), signal: ac.signal, random: () => 1,
  });
  setTimeout(() => ac.abort(), 20);
  const t0 = Date.now();
  await assert.rejects(p, /down/);
  assert.ok(Date.now() - t0 < 5_000);
});
