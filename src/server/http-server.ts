/**
 * The local EBS direct-API server over node:http: routing, the request pipeline and lifecycle.
 *
 * Pipeline of every request: route (unknown → 404 UnknownOperationException JSON) → SigV4 check of
 * the headers (sigv4.ts: the signature too when the payload hash is declared, or is PutSnapshotBlock's
 * checksum) → read the body (bounded per operation) → the body's hash against what was signed →
 * injected latency → injected throttling /
 * errors (faults.ts) → the operation (handlers.ts). Any ApiError becomes the service's error
 * response; anything else is logged and answered 500 InternalServerException — never HTML.
 *
 * Contract:
 * - `startEbsServer(opts)` resolves once the store is loaded and the socket listens; `url` is
 *   http://HOST:PORT with the real port (port 0 picks a free one).
 * - `close()` stops accepting, lets requests in flight finish (up to 5 s), then closes the store
 *   (all acknowledged writes are already durable; nothing is lost if it is never called).
 * - Limits (ServerLimits): at most maxConnections open connections (more are closed on arrival);
 *   headers within headersTimeoutMs and the whole request within requestTimeoutMs (408, closed),
 *   so slow clients (slowloris) cannot hold the server's sockets.
 * - Requests are logged at debug level with operation, snapshot, block index, status and time;
 *   never query strings (block and page tokens) or headers (credentials).
 */
import { createHash, randomUUID, webcrypto } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { BLOCK_SIZE } from '../ebs/constants.js';
import type { Logger } from '../util/log.js';
import { BlockBufferPool } from './buffer-pool.js';
import { Faults, type FaultOptions } from './faults.js';
import {
  completeSnapshot,
  getSnapshotBlock,
  listChangedBlocks,
  listSnapshotBlocks,
  putSnapshotBlock,
  startSnapshot,
  type Handler,
  type HandlerDeps,
} from './handlers.js';
import { authenticateHeaders, type Credentials, EMPTY_SHA256_HEX } from './sigv4.js';
import { ServerStore } from './store.js';
import { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
import { TokenCodec } from './tokens.js';
import { ApiError, BodyTooLargeError, readBody, readBodyInto, sendError } from './wire.js';

export interface EbsServerOptions {
  dataDir: string;
  host: string;
  port: number;
  logger: Logger;
  /** When set, signatures are verified against these keys. */
  credentials?: Credentials;
  faults: FaultOptions;
  /** Block token lifetime, seconds. */
  tokenTtlSeconds: number;
  /** Multiplies snapshot Timeouts (testing aid). */
  timeoutScale?: number;
  /** Pending snapshots allowed at once (StoreOptions.maxPendingSnapshots). */
  maxPendingSnapshots?: number;
  /** Index range scanned per listing page; 0 = unbounded. */
  listScanWindow?: number;
  /** The region credential scopes must name (SigV4, with credentials); any when unset. */
  region?: string;
  /** Connection limits (defaults: DEFAULT_LIMITS). */
  limits?: Partial<ServerLimits>;
}


export interface RunningEbsServer {
  url: string;
  host: string;
  port: number;
  store: ServerStore;
  faults: Faults;
  close(): Promise<void>;
}

interface Route {
  op: string;
  handler: Handler;
  snapshotId: string;
  blockIndex?: string;
  bodyLimit: number;
}

const SMALL_BODY = 256 * 1024;
const EMPTY_SHA = Buffer.from(EMPTY_SHA256_HEX, 'hex');
const EMPTY_BODY = Buffer.alloc(0);

/** True when the request declares no body (no Content-Length or 0, no Transfer-Encoding). */
function hasNoBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return (cl === undefined || cl === '0') && req.headers['transfer-encoding'] === undefined;
}

/** PutSnapshotBlock's x-amz-Checksum as a hex SHA-256: the payload hash its signer used. */
function payloadHashHint(op: string, req: IncomingMessage): string | undefined {
  if (op !== 'PutSnapshotBlock') return undefined;
  const c = req.headers['x-amz-checksum'];
  if (typeof c !== 'string' || c.length !== 44) return undefined;
  const raw = Buffer.from(c, 'base64');
  return raw.length === 32 ? raw.toString('hex') : undefined;
}

export function route(method: string, path: string): Route | undefined {
  const seg = path.split('/');
  if (seg[0] !== '' || seg[1] !== 'snapshots') return undefined;
  let parts: string[];
  try {
    parts = seg.slice(2).map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
  const n = parts.length;
  if (method === 'POST' && n === 0) return { op: 'StartSnapshot', handler: startSnapshot, snapshotId: '', bodyLimit: SMALL_BODY };
  if (method === 'POST' && n === 2 && parts[0] === 'completion') {
    return { op: 'CompleteSnapshot', handler: completeSnapshot, snapshotId: parts[1]!, bodyLimit: SMALL_BODY };
  }
  if (n === 3 && parts[1] === 'blocks') {
    if (method === 'PUT') {
      return { op: 'PutSnapshotBlock', handler: putSnapshotBlock, snapshotId: parts[0]!, blockIndex: parts[2], bodyLimit: BLOCK_SIZE };
    }
    if (method === 'GET') {
      return { op: 'GetSnapshotBlock', handler: getSnapshotBlock, snapshotId: parts[0]!, blockIndex: parts[2], bodyLimit: SMALL_BODY };
    }
  }
  if (method === 'GET' && n === 2 && parts[1] === 'blocks') {
    return { op: 'ListSnapshotBlocks', handler: listSnapshotBlocks, snapshotId: parts[0]!, bodyLimit: SMALL_BODY };
  }
  if (method === 'GET' && n === 2 && parts[1] === 'changedblocks') {
    return { op: 'ListChangedBlocks', handler: listChangedBlocks, snapshotId: parts[0]!, bodyLimit: SMALL_BODY };
  }
  return undefined;
}

export async function startEbsServer(opts: EbsServerOptions): Promise<RunningEbsServer> {
  const logger = opts.logger;
  const store = await ServerStore.open({
    dataDir: opts.dataDir, logger, timeoutScale: opts.timeoutScale, maxPendingSnapshots: opts.maxPendingSnapshots,
  });
  const tokens = new TokenCodec(store.secret, opts.tokenTtlSeconds * 1000);
  const faults = new Faults(opts.faults);
  const pool = new BlockBufferPool();
  const deps: HandlerDeps = { store, tokens, faults, logger, pool, listScanWindow: opts.listScanWindow ?? 0 };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const t0 = performance.now();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const rt = route(req.method ?? '', path);
    res.setHeader('x-amzn-RequestId', randomUUID());
    let pooled: Buffer | undefined;
    let bodyRead = hasNoBody(req);
    try {
      if (!rt) {
        throw new ApiError('UnknownOperationException', `No EBS direct API operation matches ${req.method} ${path.slice(0, 200)}.`);
      }
      // Authenticated from its headers before any byte of the body is read or hashed.
      const finishAuth = authenticateHeaders(req, opts.credentials, { region: opts.region, payloadHashHint: payloadHashHint(rt.op, req) });
      // A block body goes into a pooled buffer and is hashed on the thread pool (WebCrypto), off
      // the event loop; other bodies are small.
      let body: Buffer;
      let bodySha: Buffer;
      if (rt.op === 'PutSnapshotBlock' && req.headers['content-length'] === String(BLOCK_SIZE)) {
        pooled = pool.take();
        body = pooled.subarray(0, await readBodyInto(req, pooled));
        bodySha = Buffer.from(await webcrypto.subtle.digest('SHA-256', body));
      } else if (hasNoBody(req)) {
        // GET and friends: no body to wait for (node:http discards anything unread).
        body = EMPTY_BODY;
        bodySha = EMPTY_SHA;
      } else {
        body = await readBody(req, rt.bodyLimit);
        bodySha = body.length === 0 ? EMPTY_SHA : createHash('sha256').update(body).digest();
      }
      bodyRead = true;
      finishAuth(bodySha === EMPTY_SHA ? EMPTY_SHA256_HEX : bodySha.toString('hex'));
      const delayMs = faults.delayMs();
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      faults.admit(rt.snapshotId);
      await rt.handler(deps, {
        req,
        res,
        body,
        bodySha,
        query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
        snapshotId: rt.snapshotId,
        blockIndex: rt.blockIndex,
      });
    } catch (err) {
      if (err instanceof ApiError) {
        // Refused before its body was read (unauthenticated, too large): close rather than read it.
        sendError(res, err, { close: !bodyRead || err instanceof BodyTooLargeError });
      } else {
        logger.error({ err, op: rt?.op, snapshotId: rt?.snapshotId }, 'internal error');
        sendError(res, new ApiError('InternalServerException', 'An internal error occurred in the local EBS server.'));
      }
    } finally {
      // The put is durable (or failed) by now: nothing reads the body any more.
      if (pooled) pool.give(pooled);
      if (logger.isLevelEnabled('debug')) {
        logger.debug(
          { op: rt?.op ?? 'unknown', snapshotId: rt?.snapshotId || undefined, index: rt?.blockIndex, status: res.statusCode, ms: Math.round(performance.now() - t0) },
          'request',
        );
      }
    }
  };

  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const server: Server = createServer(
    // Node checks the header and request deadlines on this period (30 s by default).
    {
      connectionsCheckingInterval: Math.max(50, Math.min(1000, limits.headersTimeoutMs / 4)),
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
    },
    (req, res) => {
      void handle(req, res);
    },
  );
  // Slowloris: headers must arrive within headersTimeoutMs, the whole request (a 512 KiB body
  // included) within requestTimeoutMs; beyond maxConnections, new connections are dropped.
  server.maxConnections = limits.maxConnections;
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify({ Message: 'Malformed HTTP request.' });
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: ValidationException\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await store.close();
    throw err;
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${hostForUrl}:${port}`,
    host: opts.host,
    port,
    store,
    faults,
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => server.closeAllConnections(), 5000);
          force.unref();
          server.close(() => {
            clearTimeout(force);
            resolve();
          });
          server.closeIdleConnections();
        });
        await store.close();
      })()),
  };
}
