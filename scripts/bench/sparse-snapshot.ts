/**
 * Builds the huge sparse snapshot of the mount-time / memory benchmark straight through the AWS
 * SDK (as any EBS direct API client would): StartSnapshot of `volumeGiB`, `blocks`
 * PutSnapshotBlock calls spread evenly over the volume with `concurrency` in flight, then
 * CompleteSnapshot with the LINEAR checksum, and waits until it can be listed.
 *
 * Blocks are small-entropy (zeros but for a header naming the block), so the server's disk and
 * CPU do little work per block; each is distinct and verifiable. Throttling, 5xx and connection
 * errors are retried here with jittered backoff (the SDK's own retries are turned off so its retry
 * quota cannot give up under sustained throttling).
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import {
  EBSClient,
  StartSnapshotCommand,
  PutSnapshotBlockCommand,
  CompleteSnapshotCommand,
  ListSnapshotBlocksCommand,
} from '@aws-sdk/client-ebs';
import { BLOCK_SIZE, BLOCKS_PER_GIB } from '../../src/ebs/constants.js';
import { sha256Base64, LinearChecksum } from '../../src/ebs/checksum.js';

export interface SparseSnapshotOptions {
  endpoint: string;
  volumeGiB: number;
  blocks: number;
  concurrency: number;
  onProgress?: (done: number, total: number) => void;
}

/** Block indexes of `count` blocks spread evenly over a volume of `volumeGiB`. */
export function spreadBlockIndexes(volumeGiB: number, count: number): number[] {
  const total = volumeGiB * BLOCKS_PER_GIB;
  if (count > total) throw new RangeError(`${count} blocks do not fit in ${volumeGiB} GiB`);
  return Array.from({ length: count }, (_, i) => Math.floor((i * total) / count));
}

/** A zero block with `index` written at its start: distinct per block, almost no entropy. */
export function smallEntropyBlock(index: number, into: Buffer = Buffer.alloc(BLOCK_SIZE)): Buffer {
  into.fill(0, 0, 64);
  into.write(`ebsmount-bench sparse block ${index}\n`, 0, 'latin1');
  return into;
}

const RETRYABLE = new Set(['RequestThrottledException', 'ThrottlingException', 'InternalServerException', 'ServiceUnavailableException']);

function retryable(err: unknown): boolean {
  const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  if (e.name && RETRYABLE.has(e.name)) return true;
  if ((e.$metadata?.httpStatusCode ?? 0) >= 500) return true;
  return ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'TimeoutError'].includes(e.code ?? e.name ?? '');
}

async function withRetry<T>(what: string, fn: () => Promise<T>, attempts = 12): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || !retryable(err)) {
        throw new Error(`${what}: ${(err as Error).name}: ${(err as Error).message}`);
      }
      const delay = Math.min(2000, 20 * 2 ** attempt) * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

export async function createSparseSnapshot(opts: SparseSnapshotOptions): Promise<{ snapshotId: string; seconds: number }> {
  const started = performance.now();
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const client = new EBSClient({
    endpoint: opts.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDBENCHLOCAL', secretAccessKey: 'bench-local-server' },
    maxAttempts: 1,
    requestHandler: { httpAgent: agent },
  });
  reuseChecksumForSigning(client);
  try {
    const started0 = await withRetry('StartSnapshot', () =>
      client.send(new StartSnapshotCommand({ VolumeSize: opts.volumeGiB, ClientToken: randomUUID(), Description: 'ebsmount bench: sparse', Timeout: 60 })),
    );
    const snapshotId = started0.SnapshotId!;
    const indexes = spreadBlockIndexes(opts.volumeGiB, opts.blocks);
    const linear = new LinearChecksum();
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      const buf = Buffer.alloc(BLOCK_SIZE);
      while (next < indexes.length) {
        const index = indexes[next++]!;
        smallEntropyBlock(index, buf);
        const checksum = sha256Base64(buf);
        await withRetry(`PutSnapshotBlock ${index}`, () =>
          client.send(new PutSnapshotBlockCommand({
            SnapshotId: snapshotId, BlockIndex: index, BlockData: buf, DataLength: BLOCK_SIZE,
            Checksum: checksum, ChecksumAlgorithm: 'SHA256',
          })),
        );
        linear.add(index, checksum);
        if (++done % 5000 === 0) opts.onProgress?.(done, indexes.length);
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
    await withRetry('CompleteSnapshot', () =>
      client.send(new CompleteSnapshotCommand({
        SnapshotId: snapshotId, ChangedBlocksCount: indexes.length, Checksum: linear.digest(),
        ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR',
      })),
    );
    await waitUntilReadable(client, snapshotId, 120_000);
    return { snapshotId, seconds: (performance.now() - started) / 1000 };
  } finally {
    client.destroy();
    agent.destroy();
  }
}

/**
 * SigV4 signs a SHA-256 of the body; a PutSnapshotBlock body's SHA-256 is already in its
 * x-amz-Checksum header, so hand it to the signer (which uses x-amz-content-sha256 when present)
 * instead of hashing every 512 KiB twice. Halves the client's CPU per block.
 */
function reuseChecksumForSigning(client: EBSClient): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { method?: string; headers?: Record<string, string> };
      const checksum = req.headers?.['x-amz-checksum'];
      if (req.method === 'PUT' && checksum && req.headers) {
        req.headers['x-amz-content-sha256'] = Buffer.from(checksum, 'base64').toString('hex');
      }
      return next(args);
    },
    { step: 'build', name: 'benchReuseBlockChecksum' },
  );
}

async function waitUntilReadable(client: EBSClient, snapshotId: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await client.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId, MaxResults: 100 }));
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`snapshot ${snapshotId} still not readable: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
