/**
 * leanRequest: one HTTP/1.1 request over a pooled keep-alive agent (node:http / node:https), for
 * the two block operations of the lean path (lean-api.ts). No middleware, no streams API above
 * the socket's own.
 *
 * Contract:
 * - Sends `headers` exactly as given (the signed set; node adds only `Connection: keep-alive`) and
 *   `body` (one Buffer, written once) if any.
 * - A 2xx response body is read into `into` (when given: a block buffer from the pool) or into
 *   a buffer of its Content-Length, chunks copied in place as they arrive (no per-chunk
 *   allocation of ours, no concatenation): the only copy between socket and caller. A body longer
 *   than that buffer, or one that ends early, is EbsError('NetworkError').
 * - A non-2xx response becomes the EbsError the SDK path would give (type from x-amzn-ErrorType
 *   or the body's __type/code, message and Reason from the JSON body, the status), see
 *   `errorFromResponse`.
 * - Failures: connection errors → 'NetworkError' with the system code as reason; no socket
 *   activity for `timeoutMs` (the SDK's requestTimeout/socketTimeout) → 'TimeoutError'; no
 *   connection within `connectTimeoutMs` → 'TimeoutError'; `signal` aborted → 'AbortError'.
 *   On any failure the socket is destroyed (never reused mid-response).
 */
import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import { EbsError } from './errors.js';
import { toEbsError } from './sdk-api.js';

export interface LeanTarget {
  protocol: 'http:' | 'https:';
  hostname: string;
  port: number;
  agent: HttpAgent | HttpsAgent;
}

export interface LeanRequest {
  method: 'GET' | 'PUT';
  /** Escaped path and query, as sent. */
  pathAndQuery: string;
  headers: Record<string, string>;
  body?: Buffer;
  signal?: AbortSignal;
  timeoutMs: number;
  connectTimeoutMs: number;
  /** Where a 2xx body goes; its length is the most the body may hold. */
  into?: Buffer;
}

export interface LeanResponse {
  status: number;
  headers: IncomingMessage['headers'];
  /** The 2xx body: `into` (or a new buffer) holding `length` bytes. */
  body: Buffer;
  length: number;
}

const MAX_ERROR_BODY = 64 * 1024;

export function leanRequest(target: LeanTarget, r: LeanRequest): Promise<LeanResponse> {
  return new Promise<LeanResponse>((resolve, reject) => {
    if (r.signal?.aborted) {
      reject(new EbsError('AbortError', 'request aborted'));
      return;
    }
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    let done = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const req = send({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: r.method,
      path: r.pathAndQuery,
      headers: r.headers,
      agent: target.agent as HttpAgent,
      setHost: false,
    });
    const fail = (err: unknown): void => {
      if (done) return;
      done = true;
      cleanup();
      req.destroy();
      reject(toEbsError(err));
    };
    const onAbort = (): void => fail(new EbsError('AbortError', 'request aborted'));
    const cleanup = (): void => {
      if (connectTimer) clearTimeout(connectTimer);
      r.signal?.removeEventListener('abort', onAbort);
    };
    r.signal?.addEventListener('abort', onAbort, { once: true });
    req.setTimeout(r.timeoutMs, () => {
      fail(new EbsError('TimeoutError', `no response activity for ${r.timeoutMs} ms`, { reason: 'ETIMEDOUT' }));
    });
    req.on('socket', (socket: Socket) => {
      if (socket.connecting) {
        connectTimer = setTimeout(() => {
          fail(new EbsError('TimeoutError', `could not connect within ${r.connectTimeoutMs} ms`, { reason: 'ETIMEDOUT' }));
        }, r.connectTimeoutMs);
        socket.once('connect', () => {
          if (connectTimer) clearTimeout(connectTimer);
          connectTimer = undefined;
        });
      }
    });
    req.on('error', fail);
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const ok = status >= 200 && status < 300;
      const declared = lengthHeader(res.headers['content-length']);
      // A chunked body (no Content-Length) is sized by x-amz-Data-Length, else grows.
      const expected = declared ?? (ok ? lengthHeader(res.headers['x-amz-data-length']) : undefined);
      let buf: Buffer;
      if (ok) buf = r.into ?? Buffer.allocUnsafe(expected ?? 64 * 1024);
      else buf = Buffer.allocUnsafe(Math.min(MAX_ERROR_BODY, expected ?? MAX_ERROR_BODY));
      const growable = ok && !r.into && expected === undefined;
      let n = 0;
      let overflow = false;
      res.on('data', (chunk: Buffer) => {
        if (n + chunk.length > buf.length) {
          if (growable) {
            const bigger = Buffer.allocUnsafe(Math.max(2 * buf.length, n + chunk.length));
            buf.copy(bigger, 0, 0, n);
            buf = bigger;
          } else if (ok) {
            fail(new EbsError('NetworkError', `response body longer than the ${buf.length} bytes expected`, { reason: 'EMSGSIZE' }));
            return;
          } else {
            overflow = true;
            chunk.copy(buf, n, 0, buf.length - n);
            n = buf.length;
            return;
          }
        }
        chunk.copy(buf, n);
        n += chunk.length;
      });
      res.on('end', () => {
        if (done) return;
        if (ok && declared !== undefined && n !== declared) {
          fail(new EbsError('NetworkError', `response body ended after ${n} of ${declared} bytes`, { reason: 'ECONNRESET' }));
          return;
        }
        done = true;
        cleanup();
        if (ok) resolve({ status, headers: res.headers, body: buf, length: n });
        else reject(errorFromResponse(status, res.headers, buf.subarray(0, n), overflow));
      });
      res.on('aborted', () => fail(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })));
      res.on('error', fail);
    });
    if (r.body) req.end(r.body);
    else req.end();
  });
}

function lengthHeader(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || !/^\d+$/.test(s)) return undefined;
  return Number(s);
}

/**
 * The EbsError of an error response, as the SDK's REST-JSON deserializer names it: the type is
 * x-amzn-ErrorType (up to ':'), else the body's `__type`/`code` (after '#'), else
 * 'UnknownError'; the message is the body's Message/message; Reason is kept.
 */
export function errorFromResponse(status: number, headers: IncomingMessage['headers'], body: Buffer, truncated = false): EbsError {
  let parsed: Record<string, unknown> = {};
  if (body.length > 0 && !truncated) {
    try {
      const v = JSON.parse(body.toString('utf8')) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v)) parsed = v as Record<string, unknown>;
    } catch {
      // Not JSON (a proxy's HTML page): the status decides.
    }
  }
  const clean = (v: unknown): string | undefined => {
    if (typeof v !== 'string' || v === '') return undefined;
    let s = v;
    if (s.includes(':')) s = s.split(':')[0]!;
    if (s.includes('#')) s = s.split('#')[1]!;
    return s || undefined;
  };
  const headerType = headers['x-amzn-errortype'];
  const type =
    clean(Array.isArray(headerType) ? headerType[0] : headerType) ?? clean(parsed.__type) ?? clean(parsed.code) ?? clean(parsed.Code) ?? 'UnknownError';
  const message =
    (typeof parsed.Message === 'string' && parsed.Message) ||
    (typeof parsed.message === 'string' && parsed.message) ||
    (type === 'UnknownError' ? `HTTP ${status} without error details` : type);
  const reason = typeof parsed.Reason === 'string' ? parsed.Reason : undefined;
  return new EbsError(type, message, { status, reason });
}
