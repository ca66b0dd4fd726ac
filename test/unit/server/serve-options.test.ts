/** Unit tests of `ebsmount serve` flag validation (serveOptionsFromArgv). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopback, serveOptionsFromArgv } from '../../../src/cli/commands/serve.js';
import { UserError } from '../../../src/errors/user-error.js';

function rejects(argv: Record<string, unknown>, re: RegExp): void {
  assert.throws(() => serveOptionsFromArgv(argv), (err: unknown) => err instanceof UserError && err.exitCode === 2 && re.test(err.message) && !err.message.includes('\n'));
}

test('defaults: loopback, free port, no faults, 7-day tokens', () => {
  const o = serveOptionsFromArgv({ data: '/tmp/x' });
  assert.equal(o.host, '127.0.0.1');
  assert.equal(o.port, 0);
  assert.equal(o.dataDir, '/tmp/x');
  assert.equal(o.credentials, undefined);
  assert.equal(o.tokenTtlSeconds, 7 * 24 * 3600);
  assert.equal(o.maxPendingSnapshots, 100);
  assert.equal(serveOptionsFromArgv({ data: 'd', 'max-pending-snapshots': 3 }).maxPendingSnapshots, 3);
  assert.deepEqual(o.faults, { latencyMs: 0, latencyJitterMs: 0, rateLimit: 0, throttleRate: 0, errorRate: 0, corruptRate: 0, missingAfterStartMs: 0 });
});

test('fault flags are carried over', () => {
  const o = serveOptionsFromArgv({
    data: 'rel', 'latency-ms': 20, 'latency-jitter-ms': 5, 'rate-limit': 1000, 'throttle-rate': 0.1, 'error-rate': 0.2,
    'corrupt-rate': 0.3, 'missing-after-start-ms': 100, 'token-ttl': 1, 'access-key-id': 'a', 'secret-access-key': 'b',
  });
  assert.ok(o.dataDir.endsWith('/rel') && o.dataDir.startsWith('/'));
  assert.deepEqual(o.faults, { latencyMs: 20, latencyJitterMs: 5, rateLimit: 1000, throttleRate: 0.1, errorRate: 0.2, corruptRate: 0.3, missingAfterStartMs: 100 });
  assert.equal(o.tokenTtlSeconds, 1);
  assert.deepEqual(o.credentials, { accessKeyId: 'a', secretAccessKey: 'b' });
});

test('bad values are one-line errors naming the flag', () => {
  rejects({}, /--data/);
  rejects({ data: 'd', port: 70000 }, /--port/);
  rejects({ data: 'd', port: 1.5 }, /--port/);
  rejects({ data: 'd', 'latency-ms': -1 }, /--latency-ms/);
  rejects({ data: 'd', 'latency-ms': Number.NaN }, /--latency-ms/);
  rejects({ data: 'd', 'throttle-rate': 1.5 }, /--throttle-rate/);
  rejects({ data: 'd', 'error-rate': -0.1 }, /--error-rate/);
  rejects({ data: 'd', 'corrupt-rate': 2 }, /--corrupt-rate/);
  rejects({ data: 'd', 'rate-limit': -5 }, /--rate-limit/);
  rejects({ data: 'd', 'token-ttl': 0 }, /--token-ttl/);
  rejects({ data: 'd', 'missing-after-start-ms': -3 }, /--missing-after-start-ms/);
  rejects({ data: 'd', 'access-key-id': 'a' }, /together/);
  rejects({ data: 'd', 'max-pending-snapshots': 0 }, /--max-pending-snapshots/);
  rejects({ data: 'd', 'max-pending-snapshots': 2.5 }, /--max-pending-snapshots/);
});

test('--token-ttl is capped at what a token can hold; repeated and empty values are refused', () => {
  rejects({ data: 'd', 'token-ttl': 1e20 }, /--token-ttl must be a number of seconds from 1 to 3155760000/);
  rejects({ data: 'd', 'token-ttl': Number.NaN }, /--token-ttl/);
  assert.equal(serveOptionsFromArgv({ data: 'd', 'token-ttl': 3155760000 }).tokenTtlSeconds, 3155760000);
  rejects({ data: ['a', 'b'] as unknown as string }, /--data was given more than once/);
  rejects({ data: 'd', region: 'EU' }, /--region/);
  rejects({ data: 'd', 'max-connections': 0 }, /--max-connections/);
  assert.equal(serveOptionsFromArgv({ data: 'd' }).limits?.maxConnections, 1024);
});

test('keys: id and secret from flags, a file or the environment; exactly one secret source', () => {
  const env = { EBSMOUNT_SERVE_ACCESS_KEY_ID: 'AKENV', EBSMOUNT_SERVE_SECRET_ACCESS_KEY: 'envsecret' };
  assert.deepEqual(serveOptionsFromArgv({ data: 'd' }, env).credentials, { accessKeyId: 'AKENV', secretAccessKey: 'envsecret' });
  const f = serveOptionsFromArgv({ data: 'd', 'access-key-id': 'AK', 'secret-access-key-file': 'key.txt' });
  assert.equal(f.credentials, undefined);
  assert.equal(f.secretFile?.accessKeyId, 'AK');
  assert.ok(f.secretFile?.path.endsWith('/key.txt'));
  rejects({ data: 'd', 'access-key-id': 'AK', 'secret-access-key': 'x', 'secret-access-key-file': 'f' }, /give the secret once/);
  rejects({ data: 'd', 'secret-access-key-file': 'f' }, /must be given together/);
  rejects({ data: 'd', 'access-key-id': '' }, /--access-key-id must not be empty/);
  assert.throws(() => serveOptionsFromArgv({ data: 'd', 'access-key-id': 'AK' }, {}), /must be given together/);
});

test('isLoopback: 127/8, ::1 and localhost only', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopback(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com']) assert.equal(isLoopback(h), false, h);
});
