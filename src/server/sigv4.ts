/**
 * SigV4 checking for the local EBS server.
 *
 * Contract:
 * - Every request must carry `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/
 *   aws4_request, SignedHeaders=..., Signature=<64 hex>` and an `x-amz-date` (or `date`) header;
 *   otherwise AccessDeniedException. Without configured keys that is all: any SDK with any
 *   (dummy) credentials works.
 * - With keys configured, the access key id must match and the signature is recomputed the way
 *   the AWS SDKs sign (canonical request: method, each path segment URI-escaped once more, sorted
 *   query, the signed headers, payload hash); a mismatch is AccessDeniedException. The payload
 *   hash is `x-amz-content-sha256` when sent (and must then equal the body's real hash unless it
 *   is UNSIGNED-PAYLOAD), else the SHA-256 of the body. As on AWS, a request dated more than
 *   15 minutes away from the server's clock is denied ("Signature expired"), and so is a
 *   credential scope naming another day than the request's, a service other than `ebs`, or a
 *   region other than the server's `--region` (any well-formed region when none is set).
 * - Authentication comes before the body: everything above is checked from the headers
 *   (`authenticateHeaders`), the signature too whenever the payload hash is known up front, so
 *   an unauthenticated client never makes the server read or hash a body.
 * - No credential, signature or header value is ever logged.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ApiError } from './wire.js';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface ParsedAuth {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

const AUTH_RE =
  /^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request\s*,\s*SignedHeaders=([a-z0-9;._-]+)\s*,\s*Signature=([0-9a-f]{64})\s*$/;

export const EMPTY_SHA256_HEX = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function denied(message: string): ApiError {
  return new ApiError('AccessDeniedException', message, 'UNAUTHORIZED_ACCOUNT');
}

export function parseAuthorization(value: string | undefined): ParsedAuth {
  if (!value) throw denied('Missing Authentication Token: requests must be signed with AWS Signature Version 4.');
  const m = AUTH_RE.exec(value);
  if (!m) throw denied('The Authorization header is not a valid AWS Signature Version 4 header.');
  return {
    accessKeyId: m[1]!,
    date: m[2]!,
    region: m[3]!,
    service: m[4]!,
    signedHeaders: m[5]!.split(';'),
    signature: m[6]!,
  };
}

export interface AuthOptions {
  now?: number;
  /** The region a credential scope must name; any well-formed region when unset. */
  region?: string;
  /**
   * The payload hash the client must have signed when it declares none (x-amz-content-sha256):
   * for PutSnapshotBlock, the hex of its x-amz-Checksum. Lets the signature be checked before the
   * body is read; a body that differs from it fails the operation's own checksum check.
   */
  payloadHashHint?: string;
}

/** Completes an authentication with the SHA-256 (hex) of the body actually received. */
export type BodyCheck = (bodySha256Hex: string) => void;

/**
 * Authenticates a request from its headers alone, before any byte of its body is read: the
 * Authorization header, date, access key id, credential scope (date = the request's day,
 * service `ebs`, region), and — when the payload hash is known up front (declared in
 * x-amz-content-sha256, or `payloadHashHint`) — the signature itself. Throws
 * AccessDeniedException. The returned BodyCheck finishes the job once the body is hashed: the
 * signature when the payload hash was not known, or that the body matches the declared hash.
 */
export function authenticateHeaders(req: IncomingMessage, creds: Credentials | undefined, opts: AuthOptions = {}): BodyCheck {
  const now = opts.now ?? Date.now();
  const auth = parseAuthorization(headerValue(req, 'authorization'));
  const amzDate = headerValue(req, 'x-amz-date') ?? headerValue(req, 'date');
  if (!amzDate) throw denied('The request lacks an x-amz-date header.');
  if (!creds) return () => {};
  const signedAt = parseRequestDate(amzDate);
  if (signedAt === undefined) throw denied(`The request date '${amzDate}' is not a valid date.`);
  if (Math.abs(now - signedAt) > MAX_CLOCK_SKEW_MS) {
    throw denied(
      `Signature expired: the request date ${amzDate} is more than 15 minutes away from the server's time `
      + `${new Date(now).toISOString()} (check the client's clock).`,
    );
  }
  if (auth.accessKeyId !== creds.accessKeyId) {
    throw denied('The security token included in the request is invalid (unknown access key id).');
  }
  checkScope(auth, signedAt, opts.region);
  if (!auth.signedHeaders.includes('host')) throw denied('The signature must cover the host header.');
  const declared = headerValue(req, 'x-amz-content-sha256');
  if (declared !== undefined && declared !== 'UNSIGNED-PAYLOAD' && !/^[0-9a-f]{64}$/.test(declared)) {
    throw denied('The x-amz-content-sha256 header must be a hex SHA-256 or UNSIGNED-PAYLOAD.');
  }
  const early = declared ?? opts.payloadHashHint;
  if (early === undefined) return (bodySha256Hex) => checkSignature(req, auth, amzDate, bodySha256Hex, creds);
  checkSignature(req, auth, amzDate, early, creds);
  return (bodySha256Hex) => {
    if (declared !== undefined && declared !== 'UNSIGNED-PAYLOAD' && declared !== bodySha256Hex) {
      throw denied('The x-amz-content-sha256 header does not match the request body.');
    }
  };
}

/**
 * Checks the request's signature. `bodySha256Hex` is the SHA-256 of the body actually received.
 * Throws AccessDeniedException when it does not verify. (authenticateHeaders, then the body.)
 */
export function verifyRequest(
  req: IncomingMessage,
  bodySha256Hex: string,
  creds: Credentials | undefined,
  now: number = Date.now(),
  region?: string,
): void {
  authenticateHeaders(req, creds, { now, region })(bodySha256Hex);
}

const REGION_RE = /^[a-z]{2}(-[a-z0-9]+)+-\d{1,2}$/;

/** The credential scope must be the request's own day, the `ebs` service and a (the) region. */
function checkScope(auth: ParsedAuth, signedAt: number, region: string | undefined): void {
  const day = new Date(signedAt).toISOString().slice(0, 10).replaceAll('-', '');
  if (auth.date !== day) {
    throw denied(`Credential should be scoped to a valid date: the scope says ${auth.date}, the request is dated ${day}.`);
  }
  if (auth.service !== 'ebs') {
    throw denied(`Credential should be scoped to the correct service: 'ebs', not '${auth.service.slice(0, 40)}'.`);
  }
  if (region !== undefined ? auth.region !== region : !REGION_RE.test(auth.region)) {
    throw denied(
      `Credential should be scoped to a valid region${region !== undefined ? ` ('${region}')` : ''}, not '${auth.region.slice(0, 40)}'.`,
    );
  }
}

function checkSignature(req: IncomingMessage, auth: ParsedAuth, amzDate: string, payloadHash: string, creds: Credentials): void {
  const canonical = canonicalRequest(req, auth.signedHeaders, payloadHash);
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
  const key = signingKey(creds.secretAccessKey, auth.date, auth.region, auth.service);
  const expected = createHmac('sha256', key).update(stringToSign).digest();
  const given = Buffer.from(auth.signature, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw denied('The request signature we calculated does not match the signature you provided.');
  }
}

/** As on AWS: a signed request is accepted within 15 minutes of its date, either way. */
export const MAX_CLOCK_SKEW_MS = 15 * 60_000;

/** x-amz-date (20261127T033514Z) or an HTTP date, in ms since the epoch; undefined if neither. */
export function parseRequestDate(value: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  const t = m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : Date.parse(value);
  return Number.isFinite(t) ? t : undefined;
}

export function canonicalRequest(req: IncomingMessage, signedHeaders: string[], payloadHash: string): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  const path = rawPath
    .split('/')
    .map((seg) => escapeUri(seg))
    .join('/');
  const pairs: [string, string][] = [];
  if (rawQuery) {
    for (const part of rawQuery.split('&')) {
      if (!part) continue;
      const eq = part.indexOf('=');
      const k = decode(eq < 0 ? part : part.slice(0, eq));
      const v = eq < 0 ? '' : decode(part.slice(eq + 1));
      pairs.push([escapeUri(k), escapeUri(v)]);
    }
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const query = pairs.map(([k, v]) => `${k}=${v}`).join('&');
  const headers = signedHeaders
    .map((h) => `${h}:${(headerValue(req, h) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  return [req.method ?? 'GET', path, query, headers, signedHeaders.join(';'), payloadHash].join('\n');
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** RFC 3986 escaping as the AWS signers do it. */
export function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const kDate = createHmac('sha256', `AWS4${secret}`).update(date).digest();
  const kRegion = createHmac('sha256', kDate).update(region).digest();
  const kService = createHmac('sha256', kRegion).update(service).digest();
  return createHmac('sha256', kService).update('aws4_request').digest();
}
