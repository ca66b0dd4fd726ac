/**
 * `ebsmount serve` end to end, operation by operation, with the real @aws-sdk/client-ebs (and raw
 * HTTP where the SDK would refuse to send a request): response shapes and status codes, put and
 * complete validation, status rules, StartSnapshot rules, not-found answers, Timeout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CompleteSnapshotCommand,
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
  linearOf,
  listAllBlocks,
  makeSnapshot,
  rawRequest,
  seededBlock,
  startServer,
  type TestServer,
} from '../../helpers/server.js';

const BLOCK = 524_288;
const ZERO_SHA = 'B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE=';

/** Asserts that `p` rejects with the service error `name` (and status / Reason / message). */
async function rejectsWith(
  p: Promise<unknown>,
  name: string,
  opts: { status?: number; reason?: string; message?: RegExp } = {},
): Promise<void> {
  await assert.rejects(p, (err: Error & { Reason?: string; $metadata?: { httpStatusCode?: number } }) => {
    assert.equal(err.name, name, `error ${err.name}: ${err.message}`);
    if (opts.status !== undefined) assert.equal(err.$metadata?.httpStatusCode, opts.status);
    if (opts.reason !== undefined) assert.equal(err.Reason, opts.reason);
    if (opts.message) assert.match(err.message, opts.message);
    return true;
  });
}

function put(client: EBSClient, id: string, index: number, data: Buffer, overrides: Partial<{ Checksum: string; DataLength: number; ChecksumAlgorithm: string }> = {}) {
  return client.send(
    new PutSnapshotBlockCommand({
      SnapshotId: id,
      BlockIndex: index,
      BlockData: data,
      DataLength: overrides.DataLength ?? data.length,
      Checksum: overrides.Checksum ?? b64sha(data),
      ChecksumAlgorithm: (overrides.ChecksumAlgorithm ?? 'SHA256') as 'SHA256',
    }),
  );
}

async function startPending(client: EBSClient, volumeSize = 1): Promise<string> {
  const s = await client.send(new StartSnapshotCommand({ VolumeSize: volumeSize }));
  return s.SnapshotId!;
}

describe('ebsmount serve: operations', () => {
  let server: TestServer;
  let client: EBSClient;

  before(async () => {
    server = await startServer();
    client = ebsClient(server.endpoint);
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  test('the ready line names the endpoint and the data directory', () => {
    assert.match(server.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  test('StartSnapshot: 201 with every field; Tags and Description stored', async () => {
    const before = Date.now();
    const s = await client.send(
      new StartSnapshotCommand({ VolumeSize: 8, Description: 'my desc', Tags: [{ Key: 'team', Value: 'ir' }, { Key: 'case', Value: '42' }] }),
    );
    assert.equal(s.$metadata.httpStatusCode, 201);
    assert.match(s.SnapshotId!, /^snap-[0-9a-f]{17}$/);
    assert.equal(s.Status, 'pending');
    assert.equal(s.VolumeSize, 8);
    assert.equal(s.BlockSize, BLOCK);
    assert.equal(s.Description, 'my desc');
    assert.deepEqual(s.Tags, [{ Key: 'team', Value: 'ir' }, { Key: 'case', Value: '42' }]);
    assert.match(s.OwnerId!, /^\d{12}$/);
    assert.equal(s.SseType, 'none');
    assert.ok(s.StartTime instanceof Date);
    assert.ok(Math.abs(s.StartTime.getTime() - before) < 5000);
    assert.equal(s.ParentSnapshotId, undefined);
  });

  test('put, complete, list and get round-trip with the right codes and headers', async () => {
    const blocks = new Map([
      [0, seededBlock(1)],
      [7, seededBlock(2)],
      [2047, seededBlock(3)],
    ]);
    const id = await startPending(client);
    for (const [i, d] of blocks) {
      const r = await put(client, id, i, d);
      assert.equal(r.$metadata.httpStatusCode, 201);
      assert.equal(r.Checksum, b64sha(d));
      assert.equal(r.ChecksumAlgorithm, 'SHA256');
    }
    const c = await client.send(
      new CompleteSnapshotCommand({
        SnapshotId: id,
        ChangedBlocksCount: 3,
        Checksum: linearOf(blocks),
        ChecksumAlgorithm: 'SHA256',
        ChecksumAggregationMethod: 'LINEAR',
      }),
    );
    assert.equal(c.$metadata.httpStatusCode, 202);
    assert.equal(c.Status, 'completed');
    const l = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: id }));
    assert.equal(l.$metadata.httpStatusCode, 200);
    assert.deepEqual(l.Blocks!.map((b) => b.BlockIndex), [0, 7, 2047]);
    assert.equal(l.VolumeSize, 1);
    assert.equal(l.BlockSize, BLOCK);
    assert.equal(l.NextToken, undefined);
    assert.ok(l.ExpiryTime! instanceof Date);
    const ttl = l.ExpiryTime!.getTime() - Date.now();
    assert.ok(ttl > 6.9 * 86400_000 && ttl <= 7 * 86400_000 + 1000, `default token lifetime 7 days, got ${ttl} ms`);
    for (const b of l.Blocks!) {
      const g = await getBlock(client, id, b.BlockIndex!, b.BlockToken!);
      assert.ok(g.data.equals(blocks.get(b.BlockIndex!)!));
      assert.equal(g.checksum, b64sha(g.data));
      assert.equal(g.dataLength, BLOCK);
    }
  });

  test('GetSnapshotBlock answers raw bytes with the documented headers', async () => {
    const data = seededBlock(77);
    const id = await makeSnapshot(client, new Map([[5, data]]));
    const { blocks } = await listAllBlocks(client, id);
    const r = await rawRequest(server.endpoint, { method: 'GET', path: `/snapshots/${id}/blocks/5`, query: { blockToken: blocks.get(5)! } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-amz-data-length'), String(BLOCK));
    assert.equal(r.headers.get('x-amz-checksum'), b64sha(data));
    assert.equal(r.headers.get('x-amz-checksum-algorithm'), 'SHA256');
    assert.ok(r.body.equals(data));
  });

  test('all-zero blocks are stored and served like any other', async () => {
    const zero = Buffer.alloc(BLOCK);
    const id = await makeSnapshot(client, new Map([[3, zero]]));
    const { blocks } = await listAllBlocks(client, id);
    assert.deepEqual([...blocks.keys()], [3]);
    const g = await getBlock(client, id, 3, blocks.get(3)!);
    assert.equal(g.checksum, ZERO_SHA);
    assert.ok(g.data.equals(zero));
  });

  test('a block written twice keeps the last data', async () => {
    const id = await startPending(client);
    await put(client, id, 1, seededBlock(10));
    await put(client, id, 1, seededBlock(11));
    const c = await client.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 1 }));
    assert.equal(c.Status, 'completed');
    const { blocks } = await listAllBlocks(client, id);
    assert.ok((await getBlock(client, id, 1, blocks.get(1)!)).data.equals(seededBlock(11)));
  });

  test('pending and error snapshots cannot be read', async () => {
    const id = await startPending(client);
    await put(client, id, 0, seededBlock(4));
    await rejectsWith(client.send(new ListSnapshotBlocksCommand({ SnapshotId: id })), 'ValidationException', {
      status: 400,
      reason: 'INVALID_DEPENDENCY_REQUEST',
      message: /not completed/,
    });
    await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 0, BlockToken: 'AAAA' })), 'ValidationException', {
      reason: 'INVALID_DEPENDENCY_REQUEST',
      message: /not completed/,
    });
    const c = await client.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 5 }));
    assert.equal(c.Status, 'error');
    await rejectsWith(client.send(new ListSnapshotBlocksCommand({ SnapshotId: id })), 'ValidationException', {
      message: /not completed.*error/,
    });
  });

  describe('PutSnapshotBlock validation', () => {
    let id: string;
    before(async () => {
      id = await startPending(client);
    });

    test('DataLength other than 524288 is refused', async () => {
      const small = Buffer.alloc(1000, 1);
      await rejectsWith(put(client, id, 0, small), 'ValidationException', { status: 400, reason: 'INVALID_PARAMETER_VALUE', message: /524288/ });
      const big = Buffer.alloc(BLOCK + 1, 1);
      await rejectsWith(put(client, id, 0, big), 'ValidationException', { status: 400 });
    });

    test('a body shorter than x-amz-Data-Length is refused', async () => {
      const data = seededBlock(5).subarray(0, 4096);
      const r = await rawRequest(server.endpoint, {
        method: 'PUT',
        path: `/snapshots/${id}/blocks/0`,
        headers: { 'x-amz-data-length': String(BLOCK), 'x-amz-checksum': b64sha(data), 'x-amz-checksum-algorithm': 'SHA256' },
        body: data,
      });
      assert.equal(r.status, 400);
      assert.equal(r.headers.get('x-amzn-errortype'), 'ValidationException');
    });

    test('a checksum mismatch is refused', async () => {
      await rejectsWith(put(client, id, 0, seededBlock(6), { Checksum: b64sha(seededBlock(7)) }), 'ValidationException', {
        status: 400,
        reason: 'INVALID_CHECKSUM',
      });
      await rejectsWith(put(client, id, 0, seededBlock(6), { ChecksumAlgorithm: 'MD5' }), 'ValidationException');
    });

    test('an index outside the volume is refused; the last one is accepted', async () => {
      await rejectsWith(put(client, id, 2048, seededBlock(8)), 'ValidationException', { reason: 'INVALID_BLOCK' });
      const r = await put(client, id, 2047, seededBlock(8));
      assert.equal(r.$metadata.httpStatusCode, 201);
      const bad = await rawRequest(server.endpoint, {
        method: 'PUT',
        path: `/snapshots/${id}/blocks/-1`,
        headers: { 'x-amz-data-length': String(BLOCK), 'x-amz-checksum': b64sha(seededBlock(8)), 'x-amz-checksum-algorithm': 'SHA256' },
        body: seededBlock(8),
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.json?.Reason, 'INVALID_BLOCK');
    });

    test('puts go only into pending snapshots that exist', async () => {
      const done = await makeSnapshot(client, new Map([[0, seededBlock(9)]]));
      await rejectsWith(put(client, done, 1, seededBlock(9)), 'ValidationException', { reason: 'INVALID_DEPENDENCY_REQUEST' });
      await rejectsWith(put(client, 'snap-0123456789abcdef0', 1, seededBlock(9)), 'ResourceNotFoundException', { status: 404 });
      await rejectsWith(put(client, 'not-a-snapshot', 1, seededBlock(9)), 'ValidationException', { reason: 'INVALID_SNAPSHOT_ID' });
    });

    test('x-amz-Progress must be 0..100', async () => {
      const ok = await client.send(
        new PutSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 3, BlockData: seededBlock(3), DataLength: BLOCK, Checksum: b64sha(seededBlock(3)), ChecksumAlgorithm: 'SHA256', Progress: 50 }),
      );
      assert.equal(ok.$metadata.httpStatusCode, 201);
      await rejectsWith(
        client.send(
          new PutSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 3, BlockData: seededBlock(3), DataLength: BLOCK, Checksum: b64sha(seededBlock(3)), ChecksumAlgorithm: 'SHA256', Progress: 101 }),
        ),
        'ValidationException',
      );
    });
  });

  describe('CompleteSnapshot', () => {
    test('a ChangedBlocksCount mismatch puts the snapshot in error', async () => {
      const id = await startPending(client);
      await put(client, id, 0, seededBlock(20));
      await put(client, id, 1, seededBlock(21));
      const c = await client.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 1 }));
      assert.equal(c.$metadata.httpStatusCode, 202);
      assert.equal(c.Status, 'error');
      await rejectsWith(put(client, id, 2, seededBlock(22)), 'ValidationException', { reason: 'INVALID_DEPENDENCY_REQUEST' });
    });

    test('a LINEAR checksum mismatch puts the snapshot in error; the right one completes', async () => {
      const blocks = new Map([
        [4, seededBlock(30)],
        [1, seededBlock(31)],
      ]);
      const bad = await startPending(client);
      for (const [i, d] of blocks) await put(client, bad, i, d);
      // Digests in insertion order instead of ascending index: wrong.
      const { createHash } = await import('node:crypto');
      const h = createHash('sha256');
      for (const d of blocks.values()) h.update(createHash('sha256').update(d).digest());
      const c = await client.send(
        new CompleteSnapshotCommand({ SnapshotId: bad, ChangedBlocksCount: 2, Checksum: h.digest('base64'), ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }),
      );
      assert.equal(c.Status, 'error');
      const good = await makeSnapshot(client, blocks);
      assert.deepEqual((await listAllBlocks(client, good)).indexes, [1, 4]);
    });

    test('completing twice, unknown snapshots and a missing count are refused', async () => {
      const id = await makeSnapshot(client, new Map());
      await rejectsWith(client.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 0 })), 'ValidationException', {
        reason: 'INVALID_DEPENDENCY_REQUEST',
      });
      await rejectsWith(client.send(new CompleteSnapshotCommand({ SnapshotId: 'snap-0000000000000000f', ChangedBlocksCount: 0 })), 'ResourceNotFoundException', {
        status: 404,
      });
      const p = await startPending(client);
      const r = await rawRequest(server.endpoint, { method: 'POST', path: `/snapshots/completion/${p}` });
      assert.equal(r.status, 400);
      assert.equal(r.json?.Reason, 'INVALID_PARAMETER_VALUE');
      const r2 = await rawRequest(server.endpoint, {
        method: 'POST',
        path: `/snapshots/completion/${p}`,
        headers: { 'x-amz-changedblockscount': '0', 'x-amz-checksum': 'abc=', 'x-amz-checksum-algorithm': 'SHA256', 'x-amz-checksum-aggregation-method': 'TREE' },
      });
      assert.equal(r2.status, 400);
    });

    test('an empty snapshot completes and lists nothing', async () => {
      const id = await makeSnapshot(client, new Map(), { volumeSize: 65536 });
      const l = await client.send(new ListSnapshotBlocksCommand({ SnapshotId: id }));
      assert.deepEqual(l.Blocks, []);
      assert.equal(l.VolumeSize, 65536);
      assert.equal(l.NextToken, undefined);
    });
  });

  describe('StartSnapshot rules', () => {
    test('VolumeSize must be 1..65536', async () => {
      for (const v of [0, 65537, 1.5, -1]) {
        await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: v })), 'ValidationException', { status: 400, reason: 'INVALID_VOLUME_SIZE' });
      }
      for (const v of [1, 65536]) assert.equal((await client.send(new StartSnapshotCommand({ VolumeSize: v }))).VolumeSize, v);
      const r = await rawRequest(server.endpoint, { method: 'POST', path: '/snapshots', headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') });
      assert.equal(r.status, 400);
      assert.equal(r.headers.get('x-amzn-errortype'), 'ValidationException');
    });

    test('a malformed JSON body is a ValidationException', async () => {
      const r = await rawRequest(server.endpoint, { method: 'POST', path: '/snapshots', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"VolumeSize": ') });
      assert.equal(r.status, 400);
      assert.equal(r.json?.Reason, 'INVALID_PARAMETER_VALUE');
      const r2 = await rawRequest(server.endpoint, { method: 'POST', path: '/snapshots', body: Buffer.from('{"VolumeSize": "8"}') });
      assert.equal(r2.status, 400);
    });

    test('an unknown parent is ResourceNotFoundException; a pending parent is refused', async () => {
      await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: 'snap-0123456789abcdef0' })), 'ResourceNotFoundException', {
        status: 404,
        message: /snap-0123456789abcdef0/,
      });
      const pending = await startPending(client);
      await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: pending })), 'ValidationException', { message: /not completed/ });
    });

    test('ParentSnapshotId and Encrypted together are refused; a child cannot shrink', async () => {
      const parent = await makeSnapshot(client, new Map([[0, seededBlock(40)]]), { volumeSize: 2 });
      await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: 2, ParentSnapshotId: parent, Encrypted: true })), 'ValidationException', {
        reason: 'INVALID_PARAMETER_VALUE',
      });
      await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: parent })), 'ValidationException', { reason: 'INVALID_VOLUME_SIZE' });
      const child = await client.send(new StartSnapshotCommand({ VolumeSize: 4, ParentSnapshotId: parent }));
      assert.equal(child.ParentSnapshotId, parent);
      assert.equal(child.VolumeSize, 4);
    });

    test('an encrypted snapshot reports its key; its child inherits it', async () => {
      const s = await client.send(new StartSnapshotCommand({ VolumeSize: 1, Encrypted: true }));
      assert.notEqual(s.SseType, 'none');
      assert.match(s.KmsKeyArn!, /^arn:aws:kms:/);
      const done = await client.send(new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: 0 }));
      assert.equal(done.Status, 'completed');
      const child = await client.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: s.SnapshotId }));
      assert.equal(child.KmsKeyArn, s.KmsKeyArn);
      assert.equal(child.SseType, s.SseType);
    });

    test('Timeout must be 10..4320 minutes', async () => {
      await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 9 })), 'ValidationException');
      await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 4321 })), 'ValidationException');
      assert.equal((await client.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }))).Status, 'pending');
    });

    test('ClientToken: same parameters return the same snapshot, others conflict (409)', async () => {
      const token = `tok-${Date.now()}`;
      const a = await client.send(new StartSnapshotCommand({ VolumeSize: 3, ClientToken: token, Description: 'x' }));
      const b = await client.send(new StartSnapshotCommand({ VolumeSize: 3, ClientToken: token, Description: 'x' }));
      assert.equal(b.SnapshotId, a.SnapshotId);
      assert.equal(b.$metadata.httpStatusCode, 201);
      await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: 4, ClientToken: token, Description: 'x' })), 'ConflictException', { status: 409 });
      await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: 3, ClientToken: token, Description: 'y' })), 'ConflictException', { status: 409 });
      // Concurrent starts with one new token make one snapshot.
      const t2 = `tok2-${Date.now()}`;
      const many = await Promise.all(Array.from({ length: 20 }, () => client.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: t2 }))));
      assert.equal(new Set(many.map((m) => m.SnapshotId)).size, 1);
      // Still the same snapshot after it completed.
      await client.send(new CompleteSnapshotCommand({ SnapshotId: a.SnapshotId!, ChangedBlocksCount: 0 }));
      const c = await client.send(new StartSnapshotCommand({ VolumeSize: 3, ClientToken: token, Description: 'x' }));
      assert.equal(c.SnapshotId, a.SnapshotId);
      assert.equal(c.Status, 'completed');
    });

    test('a different token (the SDK invents one per call) makes a new snapshot', async () => {
      const a = await client.send(new StartSnapshotCommand({ VolumeSize: 1 }));
      const b = await client.send(new StartSnapshotCommand({ VolumeSize: 1 }));
      assert.notEqual(a.SnapshotId, b.SnapshotId);
    });
  });

  describe('not found and unknown requests', () => {
    test('an unknown snapshot is a 404 JSON ResourceNotFoundException', async () => {
      await rejectsWith(client.send(new ListSnapshotBlocksCommand({ SnapshotId: 'snap-0123456789abcdef0' })), 'ResourceNotFoundException', {
        status: 404,
        reason: 'SNAPSHOT_NOT_FOUND',
      });
      const r = await rawRequest(server.endpoint, { method: 'GET', path: '/snapshots/snap-0123456789abcdef0/blocks' });
      assert.equal(r.status, 404);
      assert.equal(r.headers.get('x-amzn-errortype'), 'ResourceNotFoundException');
      assert.match(r.headers.get('content-type')!, /application\/json/);
      assert.equal(typeof r.json?.Message, 'string');
      assert.equal(r.json?.Reason, 'SNAPSHOT_NOT_FOUND');
    });

    test('an unwritten block is a 404, even with a token of another block', async () => {
      const id = await makeSnapshot(client, new Map([[1, seededBlock(50)]]));
      const { blocks } = await listAllBlocks(client, id);
      await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 2, BlockToken: blocks.get(1)! })), 'ResourceNotFoundException', {
        status: 404,
      });
      await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 2048, BlockToken: blocks.get(1)! })), 'ValidationException', {
        reason: 'INVALID_BLOCK',
      });
    });

    test('unknown paths and methods get a JSON 404, never HTML', async () => {
      for (const [method, path] of [
        ['GET', '/'],
        ['GET', '/nope'],
        ['DELETE', '/snapshots/snap-0123456789abcdef0'],
        ['POST', '/snapshots/snap-01/blocks'],
        ['GET', '/snapshots/snap-01/blocks/1/extra'],
      ] as const) {
        for (const sign of [true, false]) {
          const r = await rawRequest(server.endpoint, { method, path, sign });
          assert.equal(r.status, 404, `${method} ${path}`);
          assert.match(r.headers.get('content-type')!, /application\/json/);
          assert.ok(r.headers.get('x-amzn-errortype'));
          assert.equal(typeof r.json?.Message, 'string');
          assert.ok(!r.body.toString().includes('<html'));
        }
      }
    });

    test('an internal failure (a block file lost from disk) is a 500 InternalServerException JSON; the server keeps serving', async () => {
      const data = seededBlock(88);
      const id = await makeSnapshot(client, new Map([[0, data], [1, seededBlock(89)]]));
      const { blocks } = await listAllBlocks(client, id);
      const { createHash } = await import('node:crypto');
      const { rm } = await import('node:fs/promises');
      const { join } = await import('node:path');
      const hex = createHash('sha256').update(data).digest('hex');
      await rm(join(server.dataDir, 'blocks', hex.slice(0, 2), hex));
      const r = await rawRequest(server.endpoint, { method: 'GET', path: `/snapshots/${id}/blocks/0`, query: { blockToken: blocks.get(0)! } });
      assert.equal(r.status, 500);
      assert.equal(r.headers.get('x-amzn-errortype'), 'InternalServerException');
      assert.equal(typeof r.json?.Message, 'string');
      assert.ok(!r.json!.Message!.toString().includes(hex), 'no internals in the message');
      await rejectsWith(client.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 0, BlockToken: blocks.get(0)! })), 'InternalServerException', { status: 500 });
      assert.ok((await getBlock(client, id, 1, blocks.get(1)!)).data.equals(seededBlock(89)));
      assert.doesNotMatch(server.stderr(), new RegExp(blocks.get(0)!), 'the log never holds a block token');
    });

    test('an unsigned request to a real operation is AccessDeniedException (403 JSON)', async () => {
      const r = await rawRequest(server.endpoint, { method: 'GET', path: '/snapshots/snap-0123456789abcdef0/blocks', sign: false });
      assert.equal(r.status, 403);
      assert.equal(r.headers.get('x-amzn-errortype'), 'AccessDeniedException');
      assert.equal(typeof r.json?.Message, 'string');
    });
  });
});

describe('ebsmount serve: Timeout', () => {
  let server: TestServer;
  let client: EBSClient;
  before(async () => {
    // 10 minutes × 0.0005 = 300 ms.
    server = await startServer({ args: ['--timeout-scale', '0.0005'] });
    client = ebsClient(server.endpoint);
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  test('a pending snapshot left alone past its Timeout turns to error', async () => {
    const s = await client.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }));
    const id = s.SnapshotId!;
    await put(client, id, 0, seededBlock(60));
    await new Promise((r) => setTimeout(r, 1500));
    await rejectsWith(put(client, id, 1, seededBlock(61)), 'ValidationException', { message: /error/ });
    await rejectsWith(client.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 1 })), 'ValidationException', { message: /error/ });
    await rejectsWith(client.send(new ListSnapshotBlocksCommand({ SnapshotId: id })), 'ValidationException', { message: /not completed.*error/ });
  });

  test('puts keep a snapshot alive; completing in time works', async () => {
    const s = await client.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }));
    const id = s.SnapshotId!;
    const blocks = new Map<number, Buffer>();
    for (let i = 0; i < 6; i++) {
      blocks.set(i, seededBlock(70 + i));
      await put(client, id, i, blocks.get(i)!);
      await new Promise((r) => setTimeout(r, 100));
    }
    const c = await client.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 6, Checksum: linearOf(blocks), ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }));
    assert.equal(c.Status, 'completed');
    // A completed snapshot never times out.
    await new Promise((r) => setTimeout(r, 600));
    assert.equal((await listAllBlocks(client, id)).indexes.length, 6);
  });

  test('the timeout is also applied by a timer and survives a restart', async () => {
    const s = await client.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }));
    await new Promise((r) => setTimeout(r, 2500)); // the 1 s sweep records the error
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const log = await readFile(join(server.dataDir, 'metadata.log'), 'utf8');
    assert.ok(
      log.split('\n').some((l) => l.includes(`"id":"${s.SnapshotId}"`) && l.includes('"status":"error"')),
      'the timer recorded the error without any request',
    );
    await server.restart();
    await rejectsWith(client.send(new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: 0 })), 'ValidationException', {
      message: /error/,
    });
  });
});

describe('ebsmount serve: pending-snapshot quota', () => {
  let server: TestServer;
  let client: EBSClient;
  before(async () => {
    server = await startServer({ args: ['--max-pending-snapshots', '2'] });
    client = ebsClient(server.endpoint);
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  test('StartSnapshot beyond the quota is ServiceQuotaExceededException 402; a completion frees a slot', async () => {
    const token = `quota-${Date.now()}`;
    const a = await client.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: token }));
    await client.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    await rejectsWith(client.send(new StartSnapshotCommand({ VolumeSize: 1 })), 'ServiceQuotaExceededException', { status: 402, message: /2 pending snapshots/ });
    // A ClientToken retry of a pending snapshot is not a new snapshot: it still answers.
    assert.equal((await client.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: token }))).SnapshotId, a.SnapshotId);
    await client.send(new CompleteSnapshotCommand({ SnapshotId: a.SnapshotId!, ChangedBlocksCount: 0 }));
    const c = await client.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    assert.equal(c.Status, 'pending');
  });
});
