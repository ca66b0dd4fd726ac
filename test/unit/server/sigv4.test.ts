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
import { authenticateHeaders, verifyRequest, parseAuthorization, parseRequestDate } from '../../../src/server/sigv4.js';
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
  region?: string;
  service?: string;
  /** Sign the body's hash but send no x-amz-content-sha256 (a client that does not declare it). */
  undeclared?: boolean;
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
    headers: { host: '127.0.0.1:4567', ...(opts.undeclared ? {} : { 'x-amz-content-sha256': bodyHex }), ...(opts.headers ?? {}) },
    body,
  });
  const signer = new SignatureV4({ credentials: opts.creds ?? CREDS, region: opts.region ?? 'us-east-1', service: opts.service ?? 'ebs', sha256: Sha256, applyChecksum: !opts.undeclared });
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

test('the credential scope must name the request day, the ebs service and the region', async () => {
  const path = '/snapshots/snap-0123456789abcdef0/blocks';
  const svc = await signed({ method: 'GET', path, service: 's3' });
  assertDenied(() => verifyRequest(svc.req, svc.bodyHex, CREDS), /scoped to the correct service: 'ebs', not 's3'/);
  const eu = await signed({ method: 'GET', path, region: 'eu-west-1' });
  verifyRequest(eu.req, eu.bodyHex, CREDS); // any well-formed region without --region
  assertDenied(() => verifyRequest(eu.req, eu.bodyHex, CREDS, Date.now(), 'us-east-1'), /valid region \('us-east-1'\), not 'eu-west-1'/);
  const odd = await signed({ method: 'GET', path, region: 'mars' });
  assertDenied(() => verifyRequest(odd.req, odd.bodyHex, CREDS), /valid region/);
  // A scope dated another day than x-amz-date (the signature is then computed for that scope).
  const ok = await signed({ method: 'GET', path });
  const auth = ok.req.headers.authorization as string;
  const day = /Credential=[^/]+\/(\d{8})\//.exec(auth)![1]!;
  const other = String(Number(day) - 1);
  const moved = { ...ok.req, headers: { ...ok.req.headers, authorization: auth.replace(`/${day}/`, `/${other}/`) } } as unknown as IncomingMessage;
  assertDenied(() => verifyRequest(moved, ok.bodyHex, CREDS), new RegExp(`valid date: the scope says ${other}, the request is dated ${day}`));
});

test('authentication before the body: a declared or checksum-given payload hash lets the signature be checked from the headers alone', async () => {
  const body = Buffer.alloc(524_288, 3);
  const sha = createHash('sha256').update(body).digest();
  const path = '/snapshots/snap-0123456789abcdef0/blocks/7';
  const headers = { 'x-amz-checksum': sha.toString('base64'), 'x-amz-checksum-algorithm': 'SHA256', 'x-amz-data-length': String(body.length) };
  // Declared x-amz-content-sha256, wrong secret: denied before any body hash is given.
  const bad = await signed({ method: 'PUT', path, body, headers, creds: { ...CREDS, secretAccessKey: 'wrong' } });
  assertDenied(() => authenticateHeaders(bad.req, CREDS), /signature we calculated does not match/);
  // Not declared (the SDK's way): the block's checksum is the hint.
  const badU = await signed({ method: 'PUT', path, body, headers, undeclared: true, creds: { ...CREDS, secretAccessKey: 'wrong' } });
  assertDenied(() => authenticateHeaders(badU.req, CREDS, { payloadHashHint: sha.toString('hex') }), /signature we calculated/);
  const good = await signed({ method: 'PUT', path, body, headers, undeclared: true });
  const finish = authenticateHeaders(good.req, CREDS, { payloadHashHint: sha.toString('hex') });
  finish(good.bodyHex);
  // Without a hint and undeclared, only the body's hash can finish the check.
  const later = authenticateHeaders(good.req, CREDS);
  assertDenied(() => later(createHash('sha256').update('other').digest('hex')), /signature we calculated/);
  later(good.bodyHex);
  // Declared, signed, and then a different body arrives: denied when the body is checked.
  const declared = await signed({ method: 'PUT', path, body, headers });
  const check = authenticateHeaders(declared.req, CREDS);
  assertDenied(() => check(createHash('sha256').update('other').digest('hex')), /does not match the request body/);
  // An unsigned request is denied from its headers, with or without keys.
  const unsigned = { method: 'PUT', url: path, headers: { host: 'x' } } as unknown as IncomingMessage;
  assertDenied(() => authenticateHeaders(unsigned, undefined), /Missing Authentication Token/);
});
