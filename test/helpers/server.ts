/**
 * Test helper: a real `ebsmount serve` process and an @aws-sdk/client-ebs client for it.
 *
 * Contract:
 * - `startServer({dataDir?, args?})` spawns `node dist/src/cli/main.js serve --data DIR --port 0
 *   ...args`, waits for its `listening on http://...` line (rejects with its stderr if it exits
 *   or takes > 20 s) and returns a TestServer. Without `dataDir` a temp dir is made and removed
 *   by `stop()`.
 * - `restart(extraArgs?)` stops the server (if it still runs) and starts it again on the same data
 *   directory and the same port (so `endpoint` stays valid); `extraArgs` replace the args given at
 *   start (default: the same ones). `kill9()` SIGKILLs it and waits for the exit.
 * - Every spawned server is SIGKILLed when the test process exits, even after a failure.
 * - `ebsClient(endpoint, {maxAttempts})`: dummy credentials, region us-east-1, maxAttempts 1 by
 *   default so tests see the server's answers, not the SDK's retries.
 * - Small conveniences for tests: `makeSnapshot`, `listAllBlocks`, `listAllChanged`, `getBlock`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from 'node:http';
import { createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import {
  CompleteSnapshotCommand,
  EBSClient,
  GetSnapshotBlockCommand,
  ListChangedBlocksCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
  type ChangedBlock,
  type Tag,
} from '@aws-sdk/client-ebs';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/src/cli/main.js (this file runs from dist/test/helpers). */
export const SERVER_CLI = resolve(here, '../../src/cli/main.js');

export interface TestServer {
  readonly endpoint: string;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /** Everything the server wrote to stderr so far (its log). */
  stderr(): string;
  kill9(): Promise<void>;
  restart(extraArgs?: string[]): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

interface Spawned {
  proc: ChildProcess;
  endpoint: string;
  log: { text: string };
}

function spawnServer(dataDir: string, port: number, args: string[]): Promise<Spawned> {
  const proc = spawn(process.execPath, [SERVER_CLI, 'serve', '--data', dataDir, '--port', String(port), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, EBSMOUNT_LOG_LEVEL: process.env.EBSMOUNT_LOG_LEVEL ?? 'info' },
  });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  const log = { text: '' };
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    log.text += d;
    if (log.text.length > 2_000_000) log.text = log.text.slice(-1_000_000);
  });
  return new Promise<Spawned>((resolvePromise, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`ebsmount serve did not start within 20 s; stderr:\n${log.text}`));
    }, 20_000);
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new Error(`ebsmount serve exited (code ${code}, signal ${signal}) before it was ready; stderr:\n${log.text}`));
    };
    proc.once('exit', onExit);
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (d: string) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.off('exit', onExit);
        resolvePromise({ proc, endpoint: m[1]!, log });
      }
    });
  });
}

function waitExit(proc: ChildProcess, ms: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const t = setTimeout(() => {
      try {
        proc.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }, ms);
    proc.once('exit', () => {
      clearTimeout(t);
      resolvePromise();
    });
  });
}

export async function startServer(opts: { dataDir?: string; args?: string[] } = {}): Promise<TestServer> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'ebsmount-serve-')));
  let args = opts.args ?? [];
  let cur: Spawned;
  try {
    cur = await spawnServer(dataDir, 0, args);
  } catch (err) {
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const port = Number(new URL(cur.endpoint).port);
  const stopProc = async () => {
    if (cur.proc.exitCode === null && cur.proc.signalCode === null) {
      cur.proc.kill('SIGTERM');
      await waitExit(cur.proc, 10_000);
    }
  };
  return {
    get endpoint() {
      return cur.endpoint;
    },
    dataDir,
    get process() {
      return cur.proc;
    },
    stderr: () => cur.log.text,
    async kill9() {
      cur.proc.kill('SIGKILL');
      await waitExit(cur.proc, 10_000);
    },
    async restart(extraArgs?: string[]) {
      await stopProc();
      if (extraArgs) args = extraArgs;
      let lastErr: unknown;
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          cur = await spawnServer(dataDir, port, args);
          return;
        } catch (err) {
          lastErr = err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      throw lastErr;
    },
    async stop() {
      await stopProc();
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function ebsClient(
  endpoint: string,
  opts: { maxAttempts?: number; accessKeyId?: string; secretAccessKey?: string; maxSockets?: number } = {},
): EBSClient {
  return new EBSClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: opts.accessKeyId ?? 'AKIDTEST', secretAccessKey: opts.secretAccessKey ?? 'test-secret' },
    maxAttempts: opts.maxAttempts ?? 1,
    ...(opts.maxSockets ? { requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: opts.maxSockets }) } } : {}),
  });
}

function toBuf(d: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof d === 'string') return Buffer.from(d);
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

/** node:crypto SHA-256 in the shape @smithy/signature-v4 wants. */
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

export interface RawResponse {
  status: number;
  headers: Headers;
  body: Buffer;
  /** Parsed JSON body, when it is JSON. */
  json?: Record<string, unknown>;
}

/**
 * One HTTP request to the server with fetch, SigV4-signed (dummy credentials unless given; pass
 * `sign: false` for an unsigned request). For requests the SDK would refuse to build.
 */
export async function rawRequest(
  endpoint: string,
  req: { method: string; path: string; query?: Record<string, string>; headers?: Record<string, string>; body?: Buffer; sign?: boolean },
  creds: { accessKeyId: string; secretAccessKey: string } = { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' },
): Promise<RawResponse> {
  const url = new URL(endpoint);
  const body = req.body ?? Buffer.alloc(0);
  let headers: Record<string, string> = { ...(req.headers ?? {}) };
  if (req.sign !== false) {
    const request = new HttpRequest({
      method: req.method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: req.path,
      query: req.query ?? {},
      headers: { host: url.host, 'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'), ...headers },
      body,
    });
    const signer = new SignatureV4({ credentials: creds, region: 'us-east-1', service: 'ebs', sha256: Sha256 });
    const signed = (await signer.sign(request)) as HttpRequest;
    headers = { ...signed.headers };
    delete headers.host;
  }
  const qs = new URLSearchParams(req.query ?? {}).toString();
  const res = await fetch(`${endpoint}${req.path}${qs ? `?${qs}` : ''}`, {
    method: req.method,
    headers,
    body: req.method === 'GET' || req.method === 'HEAD' ? undefined : new Uint8Array(body),
  });
  const buf = Buffer.from(await res.arrayBuffer());
  let json: Record<string, unknown> | undefined;
  if ((res.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
  return { status: res.status, headers: res.headers, body: buf, json };
}

export function b64sha(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('base64');
}

/** LINEAR checksum of blocks (index → data). */
export function linearOf(blocks: Map<number, Buffer>): string {
  const h = createHash('sha256');
  for (const i of [...blocks.keys()].sort((a, b) => a - b)) h.update(createHash('sha256').update(blocks.get(i)!).digest());
  return h.digest('base64');
}

/** Starts, fills and completes a snapshot; returns its id. */
export async function makeSnapshot(
  client: EBSClient,
  blocks: Map<number, Buffer>,
  opts: { volumeSize?: number; parent?: string; description?: string; tags?: Tag[]; complete?: boolean; encrypted?: boolean } = {},
): Promise<string> {
  const s = await client.send(
    new StartSnapshotCommand({
      VolumeSize: opts.volumeSize ?? 1,
      ParentSnapshotId: opts.parent,
      Encrypted: opts.encrypted,
      Description: opts.description,
      Tags: opts.tags,
    }),
  );
  const id = s.SnapshotId!;
  await Promise.all(
    [...blocks].map(([index, data]) =>
      client.send(
        new PutSnapshotBlockCommand({
          SnapshotId: id,
          BlockIndex: index,
          BlockData: data,
          DataLength: data.length,
          Checksum: b64sha(data),
          ChecksumAlgorithm: 'SHA256',
        }),
      ),
    ),
  );
  if (opts.complete !== false) {
    const c = await client.send(
      new CompleteSnapshotCommand({
        SnapshotId: id,
        ChangedBlocksCount: blocks.size,
        Checksum: linearOf(blocks),
        ChecksumAlgorithm: 'SHA256',
        ChecksumAggregationMethod: 'LINEAR',
      }),
    );
    if (c.Status !== 'completed') throw new Error(`snapshot ${id} completed with status ${c.Status}`);
  }
  return id;
}

/** Every block (index → token) of a snapshot, following NextToken. Also returns the page count. */
export async function listAllBlocks(
  client: EBSClient,
  snapshotId: string,
  opts: { maxResults?: number; startingBlockIndex?: number } = {},
): Promise<{ blocks: Map<number, string>; pages: number; indexes: number[] }> {
  const blocks = new Map<number, string>();
  const indexes: number[] = [];
  let next: string | undefined;
  let pages = 0;
  do {
    const r = await client.send(
      new ListSnapshotBlocksCommand({
        SnapshotId: snapshotId,
        MaxResults: opts.maxResults,
        NextToken: next,
        StartingBlockIndex: next ? undefined : opts.startingBlockIndex,
      }),
    );
    pages++;
    for (const b of r.Blocks ?? []) {
      blocks.set(b.BlockIndex!, b.BlockToken!);
      indexes.push(b.BlockIndex!);
    }
    next = r.NextToken;
  } while (next);
  return { blocks, pages, indexes };
}

export async function listAllChanged(
  client: EBSClient,
  first: string | undefined,
  second: string,
  opts: { maxResults?: number } = {},
): Promise<ChangedBlock[]> {
  const out: ChangedBlock[] = [];
  let next: string | undefined;
  do {
    const r = await client.send(
      new ListChangedBlocksCommand({ FirstSnapshotId: first, SecondSnapshotId: second, NextToken: next, MaxResults: opts.maxResults }),
    );
    out.push(...(r.ChangedBlocks ?? []));
    next = r.NextToken;
  } while (next);
  return out;
}

export async function getBlock(
  client: EBSClient,
  snapshotId: string,
  index: number,
  token: string,
): Promise<{ data: Buffer; checksum: string; dataLength: number }> {
  const r = await client.send(new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: index, BlockToken: token }));
  const data = Buffer.from(await r.BlockData!.transformToByteArray());
  return { data, checksum: r.Checksum!, dataLength: r.DataLength! };
}

/** A 512 KiB block whose bytes derive from `seed` (cheap, distinct per seed). */
export function seededBlock(seed: number): Buffer {
  const b = Buffer.alloc(524_288);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < b.length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}
