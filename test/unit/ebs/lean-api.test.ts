/**
 * LeanEbsApi (GetSnapshotBlock and PutSnapshotBlock on the lean HTTP path):
 * - against a real `ebsmount serve` that verifies signatures, through a recording proxy: the same
 *   call through the SDK and through the lean path sends the same method, path, query and signed
 *   headers (date and signature aside), and both are accepted; a wrong secret is refused;
 * - against a stub: every error response and transport failure maps to the same EbsError as the
 *   SDK path (type, status, reason, message), bodies of the wrong length are NetworkErrors,
 *   timeouts, aborts; refreshed credentials are used at once; pooled buffers come back on failure.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SdkEbsApi } from '../../../src/ebs/sdk-api.js';
import { LeanEbsApi } from '../../../src/ebs/lean-api.js';
import { BlockPool } from '../../../src/ebs/block-pool.js';
import { createEbsApi, ebsClientConfig } from '../../../src/ebs/client-options.js';
import { EbsError, retryKind } from '../../../src/ebs/errors.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { startServer, type TestServer } from '../../helpers/server.js';

const KEYS = { accessKeyId: 'AKIDLEANTEST', secretAccessKey: 'lean-test-secret' };

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('base64');
}

type Creds = typeof KEYS | (() => Promise<typeof KEYS & { expiration?: Date }>);

/** The SDK path and the lean path over one SDK client configuration. */
function pair(endpoint: string, opts: { credentials?: Creds; requestTimeoutMs?: number; pool?: BlockPool } = {}): { sdk: SdkEbsApi; lean: LeanEbsApi } {
  const config = ebsClientConfig({ endpoint, region: 'us-east-1', env: {}, requestTimeoutMs: opts.requestTimeoutMs });
  config.credentials = opts.credentials ?? KEYS;
  const sdk = new SdkEbsApi(config);
  const lean = new LeanEbsApi(new SdkEbsApi(config), { maxSockets: 8, requestTimeoutMs: opts.requestTimeoutMs ?? 30_000, pool: opts.pool });
  return { sdk, lean };
}

async function rejection(p: Promise<unknown>): Promise<EbsError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof EbsError, `expected EbsError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

/** What the signature covers: the SignedHeaders list and those headers' values, minus the date. */
function signedPart(r: Recorded): { method: string; url: string; signedHeaders: string; values: Record<string, unknown> } {
  const auth = String(r.headers.authorization);
  const m = /Credential=([^/]+)\/\d{8}\/([^/]+)\/ebs\/aws4_request, SignedHeaders=([^,]+), Signature=[0-9a-f]{64}$/.exec(auth);
  assert.ok(m, `authorization header not SigV4: ${auth.replace(/Signature=.*/, '')}`);
  const values: Record<string, unknown> = { credential: m[1], region: m[2] };
  for (const h of m[3]!.split(';')) if (h !== 'x-amz-date') values[h] = r.headers[h];
  return { method: r.method, url: r.url, signedHeaders: m[3]!, values };
}

describe('lean and SDK paths against ebsmount serve (signatures verified)', () => {
  let server: TestServer;
  let proxy: Server;
  let proxyEndpoint: string;
  const recorded: Recorded[] = [];

  before(async () => {
    server = await startServer({ args: ['--access-key-id', KEYS.accessKeyId, '--secret-access-key', KEYS.secretAccessKey] });
    const target = new URL(server.endpoint);
    // Records each request, then forwards it unchanged (headers, body) and pipes the answer back.
    proxy = createServer((req, res) => {
      recorded.push({ method: req.method!, url: req.url!, headers: req.headers });
      const out = request(
        { hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode!, up.headers);
          up.pipe(res);
        },
      );
      out.on('error', () => res.destroy());
      req.pipe(out);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    // The Host header is signed: the proxy's own address is what both clients sign and send.
    proxyEndpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  after(async () => {
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
    await server.stop();
  });

  test('PutSnapshotBlock and GetSnapshotBlock: same method, path, query and signed headers; both accepted', async () => {
    const { sdk, lean } = pair(proxyEndpoint);
    try {
      const snap = await sdk.startSnapshot({ volumeSizeGiB: 1 });
      const block = Buffer.alloc(BLOCK_SIZE, 0x5a);
      block.write('lean', 100);
      const sum = sha(block);

      let n = recorded.length;
      await sdk.putSnapshotBlock(snap.snapshotId, 3, block, sum, { progress: 40 });
      await lean.putSnapshotBlock(snap.snapshotId, 3, block, sum, { progress: 40 });
      const [sdkPut, leanPut] = recorded.slice(n);
      assert.equal(recorded.length - n, 2);
      assert.deepEqual(signedPart(leanPut!), signedPart(sdkPut!));
      assert.match(signedPart(leanPut!).signedHeaders, /content-length;content-type;host;x-amz-checksum;.*x-amz-user-agent/);

      await sdk.completeSnapshot(snap.snapshotId, 1);
      const page = await sdk.listSnapshotBlocks(snap.snapshotId);
      const token = page.blocks[0]!.token;

      n = recorded.length;
      const viaSdk = await sdk.getSnapshotBlock(snap.snapshotId, 3, token);
      const viaLean = await lean.getSnapshotBlock(snap.snapshotId, 3, token);
      const [sdkGet, leanGet] = recorded.slice(n);
      assert.deepEqual(signedPart(leanGet!), signedPart(sdkGet!));
      assert.equal(leanGet!.method, 'GET');
      assert.ok(viaLean.data.equals(block));
      assert.deepEqual({ ...viaLean, data: undefined }, { ...viaSdk, data: undefined });
      assert.equal(viaLean.checksum, sum);

      // A token (and a snapshot id) that need escaping: both paths send the same request, and
      // both are refused the same way by the server (the signature matched, the token did not).
      n = recorded.length;
      const odd = "a/b+c=d e!'()*~";
      const e1 = await rejection(sdk.getSnapshotBlock(snap.snapshotId, 3, odd));
      const e2 = await rejection(lean.getSnapshotBlock(snap.snapshotId, 3, odd));
      assert.deepEqual(signedPart(recorded[n + 1]!), signedPart(recorded[n]!));
      assert.equal(e2.type, 'ValidationException');
      assert.equal(e2.reason, 'INVALID_BLOCK_TOKEN');
      assert.deepEqual([e2.type, e2.reason, e2.message], [e1.type, e1.reason, e1.message]);
      n = recorded.length;
      const e3 = await rejection(sdk.getSnapshotBlock('snap-x y', 0, 't'));
      const e4 = await rejection(lean.getSnapshotBlock('snap-x y', 0, 't'));
      assert.deepEqual(signedPart(recorded[n + 1]!), signedPart(recorded[n]!));
      assert.deepEqual([e4.type, e4.status, e4.message], [e3.type, e3.status, e3.message]);
    } finally {
      sdk.close();
      lean.close();
    }
  });

  test('a wrong secret is refused on the lean path (the server checks what it signs)', async () => {
    const { lean } = pair(proxyEndpoint, { credentials: { ...KEYS, secretAccessKey: 'not-the-secret' } });
    try {
      const e = await rejection(lean.getSnapshotBlock('snap-0123456789abcdef0', 0, 'x'));
      assert.equal(e.type, 'AccessDeniedException');
      assert.equal(e.status, 403);
      assert.equal(retryKind(e), 'fatal');
    } finally {
      lean.close();
    }
  });

  test('createEbsApi gives the lean path by default and the SDK alone with EBSMOUNT_EBS_CLIENT=sdk', () => {
    const a = createEbsApi({ endpoint: proxyEndpoint, region: 'us-east-1', env: {} });
    const b = createEbsApi({ endpoint: proxyEndpoint, region: 'us-east-1', env: { EBSMOUNT_EBS_CLIENT: 'sdk' } });
    try {
      assert.ok(a instanceof LeanEbsApi);
      assert.ok(b instanceof SdkEbsApi);
    } finally {
      a.close?.();
      b.close?.();
    }
  });
});

describe('lean path against a stub: same EbsErrors as the SDK path', () => {
  let stub: Server;
  let endpoint: string;
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_q, res) => res.end();
  const authorizations: string[] = [];

  before(async () => {
    stub = createServer((req, res) => {
      authorizations.push(String(req.headers.authorization));
      req.resume();
      req.on('end', () => handler(req, res));
    });
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
  });

  after(async () => {
    stub.closeAllConnections();
    await new Promise((r) => stub.close(r));
  });

  const cases: [string, number, Record<string, string>, string][] = [
    ['not found', 404, { 'x-amzn-errortype': 'ResourceNotFoundException' }, JSON.stringify({ Message: 'no such snapshot', Reason: 'SNAPSHOT_NOT_FOUND' })],
    ['bad token', 400, { 'x-amzn-errortype': 'ValidationException' }, JSON.stringify({ Message: 'token', Reason: 'INVALID_BLOCK_TOKEN' })],
    ['throttled (a 400)', 400, { 'x-amzn-errortype': 'RequestThrottledException' }, JSON.stringify({ Message: 'slow down', Reason: 'ACCOUNT_THROTTLED' })],
    ['denied, type with a suffix', 403, { 'x-amzn-errortype': 'AccessDeniedException:http://internal.amazon.com/coral/' }, JSON.stringify({ Message: 'nope' })],
    ['quota', 402, { 'x-amzn-errortype': 'ServiceQuotaExceededException' }, JSON.stringify({ Message: 'q', Reason: 'DEPENDENCY_SERVICE_QUOTA_EXCEEDED' })],
    ['5xx with JSON', 500, { 'x-amzn-errortype': 'InternalServerException' }, JSON.stringify({ Message: 'boom' })],
    ['type only in the body', 400, {}, JSON.stringify({ __type: 'com.amazon#ValidationException', message: 'lower-case message' })],
    ['502 from a proxy, HTML', 502, { 'content-type': 'text/html' }, '<html>bad gateway</html>'],
  ];
  for (const [name, status, headers, body] of cases) {
    for (const op of ['get', 'put'] as const) {
      test(`${op}: ${name} → the SDK path's EbsError`, async () => {
        handler = (_req, res) => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(body);
        };
        const { sdk, lean } = pair(endpoint);
        const block = Buffer.alloc(BLOCK_SIZE, 1);
        const call = (a: SdkEbsApi | LeanEbsApi) =>
          op === 'get' ? a.getSnapshotBlock('snap-00000000000000001', 1, 'tok') : a.putSnapshotBlock('snap-00000000000000001', 1, block, sha(block));
        try {
          const fromSdk = await rejection(call(sdk));
          const fromLean = await rejection(call(lean));
          const summary = (e: EbsError) => ({ type: e.type, status: e.status, reason: e.reason, message: e.message, kind: retryKind(e) });
          if (!body.startsWith('<')) {
            assert.deepEqual(summary(fromLean), summary(fromSdk));
          } else {
            // Not JSON: the SDK names its JSON parser's SyntaxError; the lean path says what happened.
            assert.deepEqual([fromLean.status, retryKind(fromLean)], [fromSdk.status, retryKind(fromSdk)]);
            assert.equal(fromLean.type, 'UnknownError');
            assert.match(fromLean.message, new RegExp(`HTTP ${status}`));
          }
          assert.equal(fromLean.status, status);
        } finally {
          sdk.close();
          lean.close();
        }
      });
    }
  }

  test('a body shorter or longer than DataLength is a retryable NetworkError; the pooled buffer comes back', async () => {
    const pool = new BlockPool();
    const { lean } = pair(endpoint, { pool });
    try {
      for (const size of [1000, BLOCK_SIZE + 10]) {
        handler = (_req, res) => {
          res.writeHead(200, { 'x-amz-data-length': String(BLOCK_SIZE), 'x-amz-checksum': 'x', 'x-amz-checksum-algorithm': 'SHA256' });
          res.end(Buffer.alloc(size));
        };
        const idle = pool.idleCount;
        const e = await rejection(lean.getSnapshotBlock('snap-00000000000000001', 0, 't'));
        assert.equal(e.type, 'NetworkError', `${size} bytes`);
        assert.equal(retryKind(e), 'transient');
        assert.equal(pool.idleCount, idle + 1, 'the buffer went back to the pool');
        pool.take();
      }
    } finally {
      lean.close();
    }
  });

  test('a block lands in a pooled buffer, chunked bodies included', async () => {
    const block = Buffer.alloc(BLOCK_SIZE, 9);
    block.write('chunks', 7);
    handler = (_req, res) => {
      res.writeHead(200, { 'x-amz-data-length': String(BLOCK_SIZE), 'x-amz-checksum': sha(block), 'x-amz-checksum-algorithm': 'SHA256' });
      for (let off = 0; off < BLOCK_SIZE; off += 10_000) res.write(block.subarray(off, off + 10_000));
      res.end();
    };
    const pool = new BlockPool();
    const mine = pool.take();
    pool.give(mine);
    const { lean } = pair(endpoint, { pool });
    try {
      const r = await lean.getSnapshotBlock('snap-00000000000000001', 0, 't');
      assert.equal(r.data, mine, 'the body was read into the pooled buffer itself');
      assert.ok(r.data.equals(block));
      assert.equal(r.checksum, sha(block));
      assert.equal(r.dataLength, BLOCK_SIZE);
    } finally {
      lean.close();
    }
  });

  test('connection refused → NetworkError ECONNREFUSED; hang up → NetworkError', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const refused = pair(`http://127.0.0.1:${port}`);
    const { lean } = pair(endpoint);
    try {
      const e = await rejection(refused.lean.getSnapshotBlock('snap-00000000000000001', 0, 't'));
      assert.equal(e.type, 'NetworkError');
      assert.equal(e.reason, 'ECONNREFUSED');
      handler = (req) => req.socket.destroy();
      const h = await rejection(lean.getSnapshotBlock('snap-00000000000000001', 0, 't'));
      assert.equal(h.type, 'NetworkError');
      assert.equal(retryKind(h), 'transient');
    } finally {
      refused.lean.close();
      refused.sdk.close();
      lean.close();
    }
  });

  test('no answer → TimeoutError; abort → AbortError (not retried)', async () => {
    handler = () => undefined;
    const { lean } = pair(endpoint, { requestTimeoutMs: 300 });
    try {
      const t = await rejection(lean.getSnapshotBlock('snap-00000000000000001', 0, 't'));
      assert.equal(t.type, 'TimeoutError');
      assert.equal(retryKind(t), 'transient');
      const ctrl = new AbortController();
      const p = lean.putSnapshotBlock('snap-00000000000000001', 0, Buffer.alloc(BLOCK_SIZE), sha(Buffer.alloc(BLOCK_SIZE)), { signal: ctrl.signal });
      setTimeout(() => ctrl.abort(), 50);
      const a = await rejection(p);
      assert.equal(a.type, 'AbortError');
      assert.equal(retryKind(a), 'fatal');
      const pre = await rejection(lean.getSnapshotBlock('snap-00000000000000001', 0, 't', { signal: ctrl.signal }));
      assert.equal(pre.type, 'AbortError');
    } finally {
      lean.close();
      stub.closeAllConnections();
    }
  });

  test('refreshed credentials are used at once (the SDK-resolved provider is asked on every call)', async () => {
    handler = (_req, res) => {
      res.writeHead(201);
      res.end();
    };
    let calls = 0;
    // Expiring within the SDK's 5-minute refresh window: the memoized provider asks again each time.
    const provider = async () => ({ accessKeyId: `AKIDROTATED${++calls}`, secretAccessKey: 's', expiration: new Date(Date.now() + 1000) });
    const { lean } = pair(endpoint, { credentials: provider });
    try {
      const block = Buffer.alloc(BLOCK_SIZE, 2);
      await lean.putSnapshotBlock('snap-00000000000000001', 0, block, sha(block));
      const first = authorizations.at(-1)!;
      await lean.putSnapshotBlock('snap-00000000000000001', 0, block, sha(block));
      const second = authorizations.at(-1)!;
      assert.match(first, /Credential=AKIDROTATED\d+\//);
      assert.match(second, /Credential=AKIDROTATED\d+\//);
      assert.notEqual(/AKIDROTATED\d+/.exec(first)![0], /AKIDROTATED\d+/.exec(second)![0]);
    } finally {
      lean.close();
    }
  });
});
