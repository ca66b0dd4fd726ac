/**
 * SdkEbsApi against a tiny node:http stub: requests carry the right headers and bodies, responses
 * map to the EbsApi shapes, and every kind of failure maps to the right EbsError (service
 * exceptions by name with status and Reason, refused / reset / timeout / bad body length).
 * Also createEbsApi's endpoint, region, profile and dummy-credential rules.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SdkEbsApi, toEbsError, readBody } from '../../../src/ebs/sdk-api.js';
import { createEbsApi, credentialsConfigured, ebsClientConfig, isLoopbackEndpoint, resolveEndpoint } from '../../../src/ebs/client-options.js';
import { EbsError, retryKind } from '../../../src/ebs/errors.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { verifyRequest } from '../../../src/server/sigv4.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

type Handler = (req: Seen, res: ServerResponse) => void;

let server: Server;
let endpoint: string;
let handler: Handler = (_req, res) => res.end();
const seen: Seen[] = [];

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('base64');
}

function jsonError(res: ServerResponse, status: number, type: string, message: string, reason?: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type });
  res.end(JSON.stringify(reason ? { Message: message, Reason: reason } : { Message: message }));
}

function api(opts: { requestTimeoutMs?: number } = {}): SdkEbsApi {
  return createEbsApi({ endpoint, region: 'us-east-1', env: {}, requestTimeoutMs: opts.requestTimeoutMs }) as SdkEbsApi;
}

async function rejectsWith(p: Promise<unknown>): Promise<EbsError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof EbsError, `expected EbsError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('requests and responses', () => {
  test('ListSnapshotBlocks: query parameters and mapped page', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        Blocks: [{ BlockIndex: 3, BlockToken: 'tA' }, { BlockIndex: 9, BlockToken: 'tB' }],
        NextToken: 'next1', ExpiryTime: 1_900_000_000, VolumeSize: 8, BlockSize: BLOCK_SIZE,
      }));
    };
    const a = api();
    try {
      const page = await a.listSnapshotBlocks('snap-0123456789abcdef0', { startingBlockIndex: 2, maxResults: 100 });
      assert.deepEqual(page.blocks, [{ index: 3, token: 'tA' }, { index: 9, token: 'tB' }]);
      assert.equal(page.nextToken, 'next1');
      assert.equal(page.volumeSizeGiB, 8);
      assert.equal(page.expiryTime?.getTime(), 1_900_000_000_000);
      const req = seen.at(-1)!;
      assert.equal(req.method, 'GET');
      const u = new URL(req.url, endpoint);
      assert.equal(u.pathname, '/snapshots/snap-0123456789abcdef0/blocks');
      assert.equal(u.searchParams.get('startingBlockIndex'), '2');
      assert.equal(u.searchParams.get('maxResults'), '100');
      assert.match(String(req.headers.authorization), /^AWS4-HMAC-SHA256 Credential=\w+\/\d+\/us-east-1\/ebs\/aws4_request/);
    } finally {
      a.close();
    }
  });

  test('ListChangedBlocks: first snapshot in the query, absent FirstBlockToken stays undefined', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ChangedBlocks: [{ BlockIndex: 1, SecondBlockToken: 's1' }, { BlockIndex: 2, FirstBlockToken: 'f2', SecondBlockToken: 's2' }], VolumeSize: 1 }));
    };
    const a = api();
    try {
      const page = await a.listChangedBlocks('snap-00000000000000001', 'snap-00000000000000002');
      assert.deepEqual(page.blocks, [
        { index: 1, firstToken: undefined, secondToken: 's1' },
        { index: 2, firstToken: 'f2', secondToken: 's2' },
      ]);
      assert.equal(page.nextToken, undefined);
      const u = new URL(seen.at(-1)!.url, endpoint);
      assert.equal(u.pathname, '/snapshots/snap-00000000000000002/changedblocks');
      assert.equal(u.searchParams.get('firstSnapshotId'), 'snap-00000000000000001');
    } finally {
      a.close();
    }
  });

  test('GetSnapshotBlock: body read into one buffer of DataLength, checksum passed through', async () => {
    const block = Buffer.alloc(BLOCK_SIZE, 7);
    block.write('hello', 1000);
    handler = (_req, res) => {
      res.writeHead(200, {
        'x-amz-data-length': String(BLOCK_SIZE), 'x-amz-checksum': sha(block), 'x-amz-checksum-algorithm': 'SHA256',
        'content-type': 'application/octet-stream',
      });
      // Many small chunks: the reader must assemble them in place.
      for (let off = 0; off < block.length; off += 10_000) res.write(block.subarray(off, off + 10_000));
      res.end();
    };
    const a = api();
    try {
      const r = await a.getSnapshotBlock('snap-00000000000000001', 5, 'tok-x');
      assert.equal(r.data.length, BLOCK_SIZE);
      assert.ok(r.data.equals(block));
      assert.equal(r.checksum, sha(block));
      assert.equal(r.checksumAlgorithm, 'SHA256');
      assert.equal(r.dataLength, BLOCK_SIZE);
      const u = new URL(seen.at(-1)!.url, endpoint);
      assert.equal(u.pathname, '/snapshots/snap-00000000000000001/blocks/5');
      assert.equal(u.searchParams.get('blockToken'), 'tok-x');
    } finally {
      a.close();
    }
  });

  test('GetSnapshotBlock: a body shorter than DataLength is a retryable NetworkError', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'x-amz-data-length': String(BLOCK_SIZE), 'x-amz-checksum': 'x', 'x-amz-checksum-algorithm': 'SHA256' });
      res.end(Buffer.alloc(1000));
    };
    const a = api();
    try {
      const e = await rejectsWith(a.getSnapshotBlock('snap-00000000000000001', 0, 't'));
      assert.equal(e.type, 'NetworkError');
      assert.equal(retryKind(e), 'transient');
    } finally {
      a.close();
    }
  });

  test('PutSnapshotBlock: headers, body and checksum', async () => {
    handler = (_req, res) => {
      res.writeHead(201, { 'x-amz-checksum': 'c', 'x-amz-checksum-algorithm': 'SHA256' });
      res.end();
    };
    const block = Buffer.alloc(BLOCK_SIZE, 3);
    const a = api();
    try {
      await a.putSnapshotBlock('snap-00000000000000001', 42, block, sha(block), { progress: 50 });
      const req = seen.at(-1)!;
      assert.equal(req.method, 'PUT');
      assert.equal(new URL(req.url, endpoint).pathname, '/snapshots/snap-00000000000000001/blocks/42');
      assert.equal(req.headers['x-amz-data-length'], String(BLOCK_SIZE));
      assert.equal(req.headers['x-amz-checksum'], sha(block));
      assert.equal(req.headers['x-amz-checksum-algorithm'], 'SHA256');
      assert.equal(req.headers['x-amz-progress'], '50');
      assert.ok(req.body.equals(block));
      // The signer was handed the body's SHA-256 instead of hashing it again, and the signature
      // over it verifies (with the dummy loopback credentials) against the body actually sent.
      const bodyHex = createHash('sha256').update(req.body).digest('hex');
      assert.equal(req.headers['x-amz-content-sha256'], bodyHex);
      const asIncoming = { method: req.method, url: req.url, headers: req.headers } as IncomingMessage;
      verifyRequest(asIncoming, bodyHex, { accessKeyId: 'AKIDEBSMOUNTLOCAL', secretAccessKey: 'ebsmount-local-dummy-secret' });
      assert.throws(
        () => verifyRequest(asIncoming, bodyHex, { accessKeyId: 'AKIDEBSMOUNTLOCAL', secretAccessKey: 'wrong' }),
        /signature/,
      );
    } finally {
      a.close();
    }
  });

  test('StartSnapshot passes ClientToken, parent, tags; CompleteSnapshot sends LINEAR headers', async () => {
    handler = (req, res) => {
      if (req.url.startsWith('/snapshots/completion/')) {
        res.writeHead(202, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ Status: 'completed' }));
        return;
      }
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ SnapshotId: 'snap-0000000000000000a', Status: 'pending', VolumeSize: 2, BlockSize: BLOCK_SIZE, StartTime: 1_800_000_000, Tags: [{ Key: 'k', Value: 'v' }], ParentSnapshotId: 'snap-00000000000000001' }));
    };
    const a = api();
    try {
      const s = await a.startSnapshot({ volumeSizeGiB: 2, parentSnapshotId: 'snap-00000000000000001', clientToken: 'tok-123', tags: [{ key: 'k', value: 'v' }], description: 'd', timeoutMinutes: 30 });
      assert.equal(s.snapshotId, 'snap-0000000000000000a');
      assert.equal(s.status, 'pending');
      assert.deepEqual(s.tags, [{ key: 'k', value: 'v' }]);
      const body = JSON.parse(seen.at(-1)!.body.toString()) as Record<string, unknown>;
      assert.equal(body.ClientToken, 'tok-123');
      assert.equal(body.ParentSnapshotId, 'snap-00000000000000001');
      assert.equal(body.VolumeSize, 2);
      assert.equal(body.Timeout, 30);
      assert.deepEqual(body.Tags, [{ Key: 'k', Value: 'v' }]);
      const c = await a.completeSnapshot('snap-0000000000000000a', 7, { linearChecksum: 'LIN=' });
      assert.equal(c.status, 'completed');
      const req = seen.at(-1)!;
      assert.equal(req.method, 'POST');
      assert.equal(req.headers['x-amz-changedblockscount'], '7');
      assert.equal(req.headers['x-amz-checksum'], 'LIN=');
      assert.equal(req.headers['x-amz-checksum-algorithm'], 'SHA256');
      assert.equal(req.headers['x-amz-checksum-aggregation-method'], 'LINEAR');
    } finally {
      a.close();
    }
  });

  test('the SDK does not retry by itself (one request per call)', async () => {
    handler = (_req, res) => jsonError(res, 500, 'InternalServerException', 'boom');
    const before = seen.length;
    const a = api();
    try {
      const e = await rejectsWith(a.listSnapshotBlocks('snap-00000000000000001'));
      assert.equal(e.type, 'InternalServerException');
      assert.equal(e.status, 500);
      assert.equal(seen.length - before, 1);
    } finally {
      a.close();
    }
  });
});

describe('error mapping', () => {
  const cases: [number, string, string | undefined, string][] = [
    [404, 'ResourceNotFoundException', 'SNAPSHOT_NOT_FOUND', 'fatal'],
    [400, 'ValidationException', 'INVALID_BLOCK_TOKEN', 'token'],
    [400, 'RequestThrottledException', 'ACCOUNT_THROTTLED', 'throttle'],
    [403, 'AccessDeniedException', 'DEPENDENCY_ACCESS_DENIED', 'fatal'],
    [402, 'ServiceQuotaExceededException', 'DEPENDENCY_SERVICE_QUOTA_EXCEEDED', 'fatal'],
    [503, 'InternalServerException', undefined, 'transient'],
  ];
  for (const [status, type, reason, kind] of cases) {
    test(`${type} ${status} → EbsError with status and reason (${kind})`, async () => {
      handler = (_req, res) => jsonError(res, status, type, `msg ${type}`, reason);
      const a = api();
      try {
        const e = await rejectsWith(a.listSnapshotBlocks('snap-00000000000000001'));
        assert.equal(e.type, type);
        assert.equal(e.status, status);
        assert.equal(e.reason, reason);
        assert.match(e.message, new RegExp(`msg ${type}`));
        assert.equal(retryKind(e), kind);
      } finally {
        a.close();
      }
    });
  }

  test('connection refused → NetworkError ECONNREFUSED', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const a = createEbsApi({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', env: {} });
    try {
      const e = await rejectsWith(a.listSnapshotBlocks('snap-00000000000000001'));
      assert.equal(e.type, 'NetworkError');
      assert.equal(e.reason, 'ECONNREFUSED');
      assert.equal(retryKind(e), 'transient');
    } finally {
      a.close?.();
    }
  });

  test('socket hang up → NetworkError', async () => {
    handler = (_req, res) => res.socket?.destroy();
    const a = api();
    try {
      const e = await rejectsWith(a.listSnapshotBlocks('snap-00000000000000001'));
      assert.equal(e.type, 'NetworkError');
    } finally {
      a.close();
    }
  });

  test('no answer → TimeoutError after requestTimeout', async () => {
    handler = () => undefined; // never answers
    const a = api({ requestTimeoutMs: 300 });
    const t0 = Date.now();
    try {
      const e = await rejectsWith(a.listSnapshotBlocks('snap-00000000000000001'));
      assert.equal(e.type, 'TimeoutError');
      assert.equal(retryKind(e), 'transient');
      assert.ok(Date.now() - t0 < 5_000);
    } finally {
      a.close();
      server.closeAllConnections();
    }
  });

  test('abort → AbortError (not retried)', async () => {
    handler = () => undefined;
    const a = api();
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 50);
    try {
      const e = await rejectsWith(a.listSnapshotBlocks('snap-00000000000000001', { signal: ctrl.signal }));
      assert.equal(e.type, 'AbortError');
      assert.equal(retryKind(e), 'fatal');
    } finally {
      a.close();
      server.closeAllConnections();
    }
  });

  test('toEbsError: credentials, region, plain errors', () => {
    const cred = Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
    assert.equal(toEbsError(cred).type, 'CredentialsError');
    assert.equal(toEbsError(new Error('Region is missing')).type, 'ConfigError');
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    assert.equal(toEbsError(reset).type, 'NetworkError');
    assert.equal(toEbsError(reset).reason, 'ECONNRESET');
    assert.equal(toEbsError(Object.assign(new Error('x'), { code: 'ETIMEDOUT' })).type, 'TimeoutError');
    assert.equal(toEbsError('weird').type, 'UnknownError');
    const e = new EbsError('ValidationException', 'm');
    assert.equal(toEbsError(e), e);
  });

  test('readBody without DataLength grows; with DataLength rejects a longer body', async () => {
    async function* chunks(n: number, size: number) {
      for (let i = 0; i < n; i++) yield Buffer.alloc(size, i);
    }
    const grown = await readBody(chunks(3, BLOCK_SIZE), undefined);
    assert.equal(grown.length, 3 * BLOCK_SIZE);
    assert.equal(grown[2 * BLOCK_SIZE], 2);
    await assert.rejects(readBody(chunks(2, 1000), 1500), (e: unknown) => e instanceof EbsError && e.type === 'NetworkError');
    assert.equal((await readBody(chunks(3, 500), 1500)).length, 1500);
  });
});

describe('createEbsApi options', () => {
  const saved: Record<string, string | undefined> = {};
  const vars = ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN',
    'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_ENDPOINT_URL_EBS', 'AWS_EC2_METADATA_DISABLED'];
  let dir: string;
  before(async () => {
    for (const v of vars) {
      saved[v] = process.env[v];
      delete process.env[v];
    }
    dir = await mkdtemp(join(tmpdir(), 'ebsmount-sdkopts-'));
    process.env.AWS_CONFIG_FILE = join(dir, 'none-config');
    process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'none-credentials');
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
  });
  after(async () => {
    for (const v of vars) {
      if (saved[v] === undefined) delete process.env[v];
      else process.env[v] = saved[v];
    }
    await rm(dir, { recursive: true, force: true });
  });

  test('endpoint: option wins over AWS_ENDPOINT_URL_EBS; trailing slash dropped', () => {
    assert.equal(resolveEndpoint({ endpoint: 'http://a:1/', env: { AWS_ENDPOINT_URL_EBS: 'http://b:2' } }), 'http://a:1');
    assert.equal(resolveEndpoint({ env: { AWS_ENDPOINT_URL_EBS: 'http://b:2' } }), 'http://b:2');
    assert.equal(resolveEndpoint({ env: {} }), undefined);
    assert.throws(() => ebsClientConfig({ endpoint: 'ftp://x', env: {} }), /scheme/);
    assert.throws(() => ebsClientConfig({ endpoint: 'not a url', env: {} }), /invalid endpoint/);
  });

  test('loopback detection and credential detection', () => {
    for (const e of ['http://127.0.0.1:9', 'http://localhost:9', 'http://[::1]:9', 'http://127.9.8.7']) assert.ok(isLoopbackEndpoint(e), e);
    for (const e of ['https://ebs.us-east-1.amazonaws.com', 'http://10.0.0.1:9', 'http://128.0.0.1']) assert.ok(!isLoopbackEndpoint(e), e);
    const none = { AWS_SHARED_CREDENTIALS_FILE: join(dir, 'nope'), HOME: dir };
    assert.equal(credentialsConfigured({ env: none }), false);
    assert.equal(credentialsConfigured({ env: { ...none, AWS_ACCESS_KEY_ID: 'x' } }), true);
    assert.equal(credentialsConfigured({ env: { ...none, AWS_PROFILE: 'p' } }), true);
    assert.equal(credentialsConfigured({ env: none, profile: 'p' }), true);
  });

  test('loopback endpoint without credentials: dummy credentials, region us-east-1', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Blocks: [], VolumeSize: 1 }));
    };
    const a = createEbsApi({ endpoint });
    try {
      await a.listSnapshotBlocks('snap-00000000000000001');
      assert.match(String(seen.at(-1)!.headers.authorization), /Credential=AKIDEBSMOUNTLOCAL\/\d+\/us-east-1\/ebs\//);
    } finally {
      a.close?.();
    }
  });

  test('no dummy credentials when the environment has some; AWS_REGION used', async () => {
    process.env.AWS_ACCESS_KEY_ID = 'AKIDFROMENV';
    process.env.AWS_SECRET_ACCESS_KEY = 'secret-from-env';
    process.env.AWS_REGION = 'ap-south-2';
    const a = createEbsApi({ endpoint });
    try {
      await a.listSnapshotBlocks('snap-00000000000000001');
      assert.match(String(seen.at(-1)!.headers.authorization), /Credential=AKIDFROMENV\/\d+\/ap-south-2\/ebs\//);
    } finally {
      a.close?.();
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
      delete process.env.AWS_REGION;
    }
  });

  test('--profile: credentials and region come from the shared files (SDK default chain)', async () => {
    await writeFile(join(dir, 'config'), '[profile forensics]\nregion = eu-west-3\n');
    await writeFile(join(dir, 'credentials'), '[forensics]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s3cr3t\n');
    process.env.AWS_CONFIG_FILE = join(dir, 'config');
    process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'credentials');
    const a = createEbsApi({ endpoint, profile: 'forensics' });
    try {
      await a.listSnapshotBlocks('snap-00000000000000001');
      assert.match(String(seen.at(-1)!.headers.authorization), /Credential=AKIDPROFILE\/\d+\/eu-west-3\/ebs\//);
    } finally {
      a.close?.();
      process.env.AWS_CONFIG_FILE = join(dir, 'none-config');
      process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'none-credentials');
    }
  });

  test('unknown profile → CredentialsError', async () => {
    const a = createEbsApi({ endpoint, profile: 'does-not-exist' });
    try {
      const e = await rejectsWith(a.listSnapshotBlocks('snap-00000000000000001'));
      assert.equal(e.type, 'CredentialsError');
    } finally {
      a.close?.();
    }
  });

  test('no endpoint and no region → ConfigError', async () => {
    process.env.AWS_ACCESS_KEY_ID = 'AKIDFROMENV';
    process.env.AWS_SECRET_ACCESS_KEY = 'secret-from-env';
    const a = createEbsApi({});
    try {
      const e = await rejectsWith(a.listSnapshotBlocks('snap-00000000000000001'));
      assert.equal(e.type, 'ConfigError');
    } finally {
      a.close?.();
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });
});
