/**
 * `ebsmount serve` end to end: SigV4 authentication (any signature without keys; verified with
 * --access-key-id/--secret-access-key), loopback binding, every fault-injection flag observed
 * through the real SDK, and flag validation.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GetSnapshotBlockCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
  type EBSClient,
} from '@aws-sdk/client-ebs';
import {
  b64sha,
  ebsClient,
  getBlock,
  listAllBlocks,
  makeSnapshot,
  rawRequest,
  SERVER_CLI,
  seededBlock,
  startServer,
  type TestServer,
} from '../../helpers/server.js';

async function errorOf(p: Promise<unknown>): Promise<{ name: string; status?: number; message: string; reason?: string } | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    const e = err as Error & { Reason?: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message, reason: e.Reason };
  }
}

function putCmd(id: string, index: number, data: Buffer) {
  return new PutSnapshotBlockCommand({ SnapshotId: id, BlockIndex: index, BlockData: data, DataLength: data.length, Checksum: b64sha(data), ChecksumAlgorithm: 'SHA256' });
}

describe('ebsmount serve: authentication', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ args: ['--access-key-id', 'AKIDGOOD', '--secret-access-key', 's3cret/Key+x'] });
  });
  after(async () => {
    await server?.stop();
  });

  test('it binds to loopback by default', () => {
    assert.match(server.endpoint, /^http:\/\/127\.0\.0\.1:/);
  });

  test('requests signed with the configured keys work, for every operation', async () => {
    const client = ebsClient(server.endpoint, { accessKeyId: 'AKIDGOOD', secretAccessKey: 's3cret/Key+x' });
    try {
      const id = await makeSnapshot(client, new Map([[2, seededBlock(1)]]));
      const { blocks } = await listAllBlocks(client, id, { maxResults: 100 });
      assert.ok((await getBlock(client, id, 2, blocks.get(2)!)).data.equals(seededBlock(1)));
    } finally {
      client.destroy();
    }
  });

  test('a wrong secret or key id is AccessDeniedException 403', async () => {
    const good = ebsClient(server.endpoint, { accessKeyId: 'AKIDGOOD', secretAccessKey: 's3cret/Key+x' });
    const id = await makeSnapshot(good, new Map([[0, seededBlock(2)]]));
    const s = await good.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    good.destroy();
    for (const creds of [
      { accessKeyId: 'AKIDGOOD', secretAccessKey: 'wrong' },
      { accessKeyId: 'AKIDOTHER', secretAccessKey: 's3cret/Key+x' },
    ]) {
      const bad = ebsClient(server.endpoint, creds);
      try {
        for (const call of [
          () => bad.send(new StartSnapshotCommand({ VolumeSize: 1 })),
          () => bad.send(new ListSnapshotBlocksCommand({ SnapshotId: id })),
          () => bad.send(putCmd(s.SnapshotId!, 0, seededBlock(3))),
          () => bad.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 0, BlockToken: 'x' })),
        ]) {
          const e = await errorOf(call());
          assert.equal(e?.name, 'AccessDeniedException', JSON.stringify(e));
          assert.equal(e?.status, 403);
        }
      } finally {
        bad.destroy();
      }
    }
  });

  test('an unsigned request, or a body that does not match its signed hash, is denied', async () => {
    const r = await rawRequest(server.endpoint, { method: 'POST', path: '/snapshots', body: Buffer.from('{"VolumeSize":1}'), sign: false });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('x-amzn-errortype'), 'AccessDeniedException');
    assert.equal(typeof r.json?.Message, 'string');
    const creds = { accessKeyId: 'AKIDGOOD', secretAccessKey: 's3cret/Key+x' };
    const ok = await rawRequest(server.endpoint, { method: 'POST', path: '/snapshots', body: Buffer.from('{"VolumeSize":1}') }, creds);
    assert.equal(ok.status, 201);
    const swapped = await rawRequest(
      server.endpoint,
      {
        method: 'POST',
        path: '/snapshots',
        body: Buffer.from('{"VolumeSize":2}'),
        headers: { 'x-amz-content-sha256': createHash('sha256').update('{"VolumeSize":1}').digest('hex') },
      },
      creds,
    );
    assert.equal(swapped.status, 403);
  });
});

describe('ebsmount serve: fault injection', () => {
  let server: TestServer;
  let client: EBSClient;
  let snapA: string;
  let snapB: string;
  const data = seededBlock(42);

  before(async () => {
    server = await startServer();
    client = ebsClient(server.endpoint, { maxSockets: 64, accessKeyId: 'any', secretAccessKey: 'thing' });
    snapA = await makeSnapshot(client, new Map([[1, data]]));
    snapB = await makeSnapshot(client, new Map([[1, data]]));
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  async function timed(p: Promise<unknown>): Promise<number> {
    const t0 = performance.now();
    await p;
    return performance.now() - t0;
  }

  test('--latency-ms and --latency-jitter-ms delay every request', async () => {
    const base = await timed(client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA })));
    await server.restart(['--latency-ms', '150']);
    const slow: number[] = [];
    for (let i = 0; i < 3; i++) slow.push(await timed(client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA }))));
    assert.ok(slow.every((t) => t >= 145), `latency applied: ${slow.join(', ')} ms (without: ${base} ms)`);
    await server.restart(['--latency-ms', '10', '--latency-jitter-ms', '200']);
    const jit: number[] = [];
    for (let i = 0; i < 12; i++) jit.push(await timed(client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA }))));
    assert.ok(jit.every((t) => t >= 9), `min latency 10 ms: ${jit}`);
    assert.ok(Math.max(...jit) - Math.min(...jit) > 30, `jitter spreads the latencies: ${jit.map(Math.round).join(', ')}`);
  });

  test('--rate-limit throttles beyond N requests per second per snapshot', async () => {
    await server.restart(['--rate-limit', '10']);
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 40 }, () => errorOf(client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA })))));
    const seconds = (performance.now() - started) / 1000;
    const throttled = results.filter((e) => e?.name === 'RequestThrottledException');
    assert.ok(throttled.every((e) => e!.status === 400));
    assert.ok(results.every((e) => e === undefined || e.name === 'RequestThrottledException'));
    const ok = results.filter((e) => e === undefined).length;
    // A bucket of 10 that refills 10 per second: the burst gets 10, plus what refilled while its
    // requests were arriving (a loaded machine spreads them out), never more.
    const most = 10 + Math.ceil(10 * seconds) + 1;
    assert.ok(ok >= 10 && ok <= most, `10 to ${most} admitted in ${seconds.toFixed(2)} s, got ${ok}`);
    assert.ok(throttled.length > 0 || most >= 40, 'nothing throttled');
    // Another snapshot has its own budget.
    assert.equal(await errorOf(client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapB }))), undefined);
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await errorOf(client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA }))), undefined);
  });

  test('--throttle-rate throttles that fraction of requests (RequestThrottledException, 400)', async () => {
    await server.restart(['--throttle-rate', '1']);
    for (const call of [() => client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA })), () => client.send(new StartSnapshotCommand({ VolumeSize: 1 }))]) {
      const e = await errorOf(call());
      assert.equal(e?.name, 'RequestThrottledException');
      assert.equal(e?.status, 400);
    }
    await server.restart(['--throttle-rate', '0.5']);
    const results = await Promise.all(Array.from({ length: 80 }, () => errorOf(client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA })))));
    const n = results.filter((e) => e?.name === 'RequestThrottledException').length;
    assert.ok(n >= 20 && n <= 60, `about half throttled: ${n}/80`);
  });

  test('--error-rate answers that fraction with 500 InternalServerException; SDK retries get through', async () => {
    await server.restart(['--error-rate', '1']);
    const e = await errorOf(client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA })));
    assert.equal(e?.name, 'InternalServerException');
    assert.equal(e?.status, 500);
    const raw = await rawRequest(server.endpoint, { method: 'GET', path: `/snapshots/${snapA}/blocks` });
    assert.equal(raw.status, 500);
    assert.equal(raw.headers.get('x-amzn-errortype'), 'InternalServerException');
    await server.restart(['--error-rate', '0.5']);
    const results = await Promise.all(Array.from({ length: 80 }, () => errorOf(client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA })))));
    const n = results.filter((x) => x?.name === 'InternalServerException').length;
    assert.ok(n >= 20 && n <= 60, `about half failed: ${n}/80`);
    const retrying = ebsClient(server.endpoint, { maxAttempts: 12 });
    try {
      const r = await retrying.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA }));
      assert.equal(r.Blocks!.length, 1);
    } finally {
      retrying.destroy();
    }
  });

  test('--corrupt-rate corrupts GetSnapshotBlock bodies and keeps the true checksum header', async () => {
    await server.restart(['--corrupt-rate', '1']);
    const { blocks } = await listAllBlocks(client, snapA);
    const g = await getBlock(client, snapA, 1, blocks.get(1)!);
    assert.equal(g.checksum, b64sha(data), 'the header names the true content');
    assert.equal(g.data.length, data.length);
    assert.ok(!g.data.equals(data), 'the bytes are wrong');
    assert.notEqual(b64sha(g.data), g.checksum);
    // Puts are not affected, and with the flag off the stored block is intact.
    const id = await makeSnapshot(client, new Map([[0, data]]));
    await server.restart([]);
    const l = await listAllBlocks(client, id);
    assert.ok((await getBlock(client, id, 0, l.blocks.get(0)!)).data.equals(data));
    await server.restart(['--corrupt-rate', '0.5']);
    let bad = 0;
    for (let i = 0; i < 30; i++) if (!(await getBlock(client, snapA, 1, blocks.get(1)!)).data.equals(data)) bad++;
    assert.ok(bad >= 5 && bad <= 25, `about half corrupted: ${bad}/30`);
  });

  test("--missing-after-start-ms: puts into a young snapshot fail with 'does not exist'", async () => {
    await server.restart(['--missing-after-start-ms', '1000']);
    const s = await client.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    const e = await errorOf(client.send(putCmd(s.SnapshotId!, 0, data)));
    assert.equal(e?.name, 'ResourceNotFoundException');
    assert.equal(e?.status, 404);
    assert.match(e!.message, /does not exist/);
    await new Promise((r) => setTimeout(r, 1100));
    const ok = await client.send(putCmd(s.SnapshotId!, 0, data));
    assert.equal(ok.$metadata.httpStatusCode, 201);
  });

  test('--token-ttl sets the block token lifetime', async () => {
    await server.restart(['--token-ttl', '30']);
    const r = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapA }));
    const ttl = r.ExpiryTime!.getTime() - Date.now();
    assert.ok(ttl > 28_000 && ttl <= 30_000, `ttl ${ttl}`);
  });
});

describe('ebsmount serve: flag validation', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ebsmount-serve-flags-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const p = spawn(process.execPath, [SERVER_CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
    const code = await new Promise<number | null>((res) => p.on('exit', (c) => res(c)));
    clearTimeout(timer);
    return { code, stdout, stderr };
  }

  for (const [args, flag] of [
    [['--throttle-rate', '2'], '--throttle-rate'],
    [['--error-rate', 'abc'], '--error-rate'],
    [['--corrupt-rate', '-0.5'], '--corrupt-rate'],
    [['--latency-ms', '-10'], '--latency-ms'],
    [['--rate-limit', 'x'], '--rate-limit'],
    [['--token-ttl', '0'], '--token-ttl'],
    [['--port', '99999'], '--port'],
    [['--access-key-id', 'A'], 'together'],
  ] as const) {
    test(`a bad ${flag} is a one-line error with a non-zero exit`, async () => {
      const r = await run(['--data', dir, ...args]);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^ebsmount: (serve: )?.*${flag}`));
    });
  }

  test('--data is required', async () => {
    const r = await run([]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--data/);
  });
});
