/**
 * Unit tests of the server's SigV4 check (src/server/sigv4.ts) against requests signed by the AWS
 * SDK's own signer (@smithy/signature-v4).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import { verifyRequest, parseAuthorization, parseRequestDate } from '../../../src/server/sigv4.js';
import { ApiError } from '../../../src/server/wire.js';

function toBuf(d: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof d === 'string') return Buffer.from(d);
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

class Sha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret ? createHmac('sha256', toBuf(secret)) : createHash('sha256');
  }
  update(d: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(toBuf(d));
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
}

const CREDS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

async function signed(opts: {
  method: string;
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer;
  creds?: typeof CREDS;
  signingDate?: Date;
}): Promise<{ req: IncomingMessage; bodyHex: string }> {
  const body = opts.body ?? Buffer.alloc(0);
  const bodyHex = createHash('sha256').update(body).digest('hex');
  const request = new HttpRequest({
    method: opts.method,
    protocol: 'http:',
    hostname: '127.0.0.1',
    port: 4567,
    path: opts.path,
    query: opts.query ?? {},
    headers: { host: '127.0.0.1:4567', 'x-amz-content-sha256': bodyHex, ...(opts.headers ?? {}) },
    body,
  });
  const signer = new SignatureV4({ credentials: opts.creds ?? CREDS, region: 'us-east-1', service: 'ebs', sha256: Sha256 });
  const s = (await signer.sign(request, { signingDate: opts.signingDate })) as HttpRequest;
  const qs = Object.entries(s.query ?? {})
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.headers)) headers[k.toLowerCase()] = v;
  const req = { method: s.method, url: s.path + (qs ? `?${qs}` : ''), headers } as unknown as IncomingMessage;
  return { req, bodyHex };
}

function assertDenied(fn: () => void, re: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof ApiError && err.type === 'AccessDeniedException' && err.status === 403 && re.test(err.message));
}

test('a request signed by the SDK signer verifies', async () => {
  const { req, bodyHex } = await signed({
    method: 'GET',
    path: '/snapshots/snap-0123456789abcdef0/blocks',
    query: { maxResults: '100', pageToken: 'ab-_cd', startingBlockIndex: '5' },
  });
  verifyRequest(req, bodyHex, CREDS);
});

test('a PUT with a body and extra signed headers verifies; a changed body does not', async () => {
  const body = Buffer.alloc(1000, 7);
  const { req, bodyHex } = await signed({
    method: 'PUT',
    path: '/snapshots/snap-01/blocks/3',
    headers: { 'x-amz-checksum': 'abc=', 'x-amz-data-length': '1000', 'content-type': 'application/octet-stream' },
    body,
  });
  verifyRequest(req, bodyHex, CREDS);
  const other = createHash('sha256').update(Buffer.alloc(1000, 8)).digest('hex');
  assertDenied(() => verifyRequest(req, other, CREDS), /x-amz-content-sha256/);
});

test('a wrong secret, wrong key id or altered request is denied', async () => {
  const { req, bodyHex } = await signed({ method: 'POST', path: '/snapshots/completion/snap-01', headers: { 'x-amz-changedblockscount': '3' } });
  assertDenied(() => verifyRequest(req, bodyHex, { ...CREDS, secretAccessKey: 'other' }), /signature/);
  assertDenied(() => verifyRequest(req, bodyHex, { ...CREDS, accessKeyId: 'OTHER' }), /access key/);
  const altered = { ...req, headers: { ...req.headers, 'x-amz-changedblockscount': '4' } } as unknown as IncomingMessage;
  assertDenied(() => verifyRequest(altered, bodyHex, CREDS), /signature/);
  const otherPath = { ...req, url: '/snapshots/completion/snap-02' } as unknown as IncomingMessage;
  assertDenied(() => verifyRequest(otherPath, bodyHex, CREDS), /signature/);
});

test('without configured keys any well-formed signature passes, a missing one does not', async () => {
  const { req, bodyHex } = await signed({ method: 'GET', path: '/snapshots/snap-01/blocks', creds: { accessKeyId: 'X', secretAccessKey: 'Y' } });
  verifyRequest(req, bodyHex, undefined);
  const noAuth = { ...req, headers: { ...req.headers, authorization: undefined } } as unknown as IncomingMessage;
  assertDenied(() => verifyRequest(noAuth, bodyHex, undefined), /Missing Authentication Token/);
  const bogus = { ...req, headers: { ...req.headers, authorization: 'Bearer abc' } } as unknown as IncomingMessage;
  assertDenied(() => verifyRequest(bogus, bodyHex, undefined), /not a valid/);
});

test('parseAuthorization reads the credential scope', () => {
  const a = parseAuthorization(
    'AWS4-HMAC-SHA256 Credential=AK/20260101/eu-west-1/ebs/aws4_request, SignedHeaders=host;x-amz-date, Signature=' + 'a'.repeat(64),
  );
  assert.deepEqual(a, {
    accessKeyId: 'AK',
    date: '20260101',
    region: 'eu-west-1',
    service: 'ebs',
    signedHeaders: ['host', 'x-amz-date'],
    signature: 'a'.repeat(64),
  });
});

test('a request dated more than 15 minutes away from the server clock is denied, either way', async () => {
  const now = Date.now();
  for (const skewMin of [-14, 14]) {
    const { req, bodyHex } = await signed({ method: 'GET', path: '/snapshots/snap-1/blocks', signingDate: new Date(now + skewMin * 60_000) });
    verifyRequest(req, bodyHex, CREDS, now);
  }
  for (const skewMin of [-16, 16]) {
    const { req, bodyHex } = await signed({ method: 'GET', path: '/snapshots/snap-1/blocks', signingDate: new Date(now + skewMin * 60_000) });
    assertDenied(() => verifyRequest(req, bodyHex, CREDS, now), /Signature expired.*clock/);
    // Without configured keys the server does not check signatures, nor their dates.
    verifyRequest(req, bodyHex, undefined, now);
  }
});

test('parseRequestDate reads x-amz-date and HTTP dates', () => {
  assert.equal(parseRequestDate('20261127T033514Z'), Date.UTC(2026, 10, 27, 3, 35, 14));
  assert.equal(parseRequestDate('Fri, 27 Nov 2026 03:35:14 GMT'), Date.UTC(2026, 10, 27, 3, 35, 14));
  assert.equal(parseRequestDate('yesterday-ish'), undefined);
});
