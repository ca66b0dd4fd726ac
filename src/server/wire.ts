/**
 * Wire helpers of the local EBS server: the error type every layer of src/server throws, and how
 * responses (JSON, errors, empty) and request bodies go over node:http.
 *
 * Contract:
 * - `ApiError(type, message, reason?)` carries the service's error name; its HTTP status comes from
 *   ERROR_STATUS (DESIGN §1: RequestThrottledException is a 400, ConflictException a 409...).
 * - Every error response has the header `x-amzn-ErrorType: <type>`, Content-Type
 *   application/json and the body `{"Message": ..., "Reason": ...}` (Reason only when set).
 *   Nothing ever answers with HTML.
 * - `readBody` reads at most `limit` bytes; a longer body is a ValidationException (the connection
 *   is closed afterwards so the unread rest cannot confuse keep-alive).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export type ApiErrorType =
  | 'AccessDeniedException'
  | 'ValidationException'
  | 'ResourceNotFoundException'
  | 'RequestThrottledException'
  | 'ServiceQuotaExceededException'
  | 'InternalServerException'
  | 'ConcurrentLimitExceededException'
  | 'ConflictException'
  | 'UnknownOperationException';

export const ERROR_STATUS: Record<ApiErrorType, number> = {
  AccessDeniedException: 403,
  ValidationException: 400,
  ResourceNotFoundException: 404,
  RequestThrottledException: 400,
  ServiceQuotaExceededException: 402,
  InternalServerException: 500,
  ConcurrentLimitExceededException: 400,
  ConflictException: 409,
  UnknownOperationException: 404,
};

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly type: ApiErrorType,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
  get status(): number {
    return ERROR_STATUS[this.type];
  }
}

export function validation(message: string, reason: string): ApiError {
  return new ApiError('ValidationException', message, reason);
}

export function notFound(message: string, reason?: string): ApiError {
  return new ApiError('ResourceNotFoundException', message, reason);
}

/** Writes a JSON response (status 200/201/202). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': String(payload.length),
  });
  res.end(payload);
}

/** Writes an error response in the service's shape. */
export function sendError(res: ServerResponse, err: ApiError, opts: { close?: boolean } = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body: Record<string, string> = { Message: err.message };
  if (err.reason) body.Reason = err.reason;
  const headers: Record<string, string> = { 'x-amzn-ErrorType': err.type };
  if (opts.close) headers.Connection = 'close';
  sendJson(res, err.status, body, headers);
}

/**
 * Reads the request body into one Buffer. `expected` (from Content-Length when known) lets the
 * common case fill a single allocation without concatenating chunks.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new BodyTooLargeError(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      total += chunk.length;
      if (total > limit) {
        failed = true;
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      if (!failed) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    });
    req.on('close', () => {
      if (!ended && !failed) {
        failed = true;
        reject(new Error('request aborted'));
      }
    });
    req.on('error', (err) => {
      if (!failed) {
        failed = true;
        reject(err);
      }
    });
  });
}

/**
 * Reads the request body into `buf` (a pooled block buffer); resolves with the byte count. A body
 * longer than `buf` is a BodyTooLargeError.
 */
export function readBodyInto(req: IncomingMessage, buf: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      if (n + chunk.length > buf.length) {
        failed = true;
        reject(new BodyTooLargeError(buf.length));
        return;
      }
      chunk.copy(buf, n);
      n += chunk.length;
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      if (!failed) resolve(n);
    });
    req.on('close', () => {
      if (!ended && !failed) {
        failed = true;
        reject(new Error('request aborted'));
      }
    });
    req.on('error', (err) => {
      if (!failed) {
        failed = true;
        reject(err);
      }
    });
  });
}

export class BodyTooLargeError extends ApiError {
  constructor(limit: number) {
    super('ValidationException', `The request body is larger than ${limit} bytes`, 'INVALID_PARAMETER_VALUE');
  }
}

/** Case-insensitive single header value ('' when absent). */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

/** Epoch seconds (the SDK's timestamp format for REST-JSON bodies) of a time in ms. */
export function epochSeconds(ms: number): number {
  return Math.round(ms) / 1000;
}

/**
 * Parses a non-negative integer written in decimal (no sign, no exponent, no spaces); undefined
 * when `s` is not one.
 */
export function parseUint(s: string | undefined | null): number | undefined {
  if (s === undefined || s === null || !/^[0-9]{1,15}$/.test(s)) return undefined;
  return Number(s);
}
