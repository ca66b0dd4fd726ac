/**
 * The client-side ceiling of this machine: GetSnapshotBlock straight through ebsmount's own
 * EbsApi (the AWS SDK, the same http agent settings) with SHA-256 verification, `concurrency`
 * requests in flight, no FUSE, no cache. What the CPU (client + local server on the same cores)
 * lets any reader reach; the upstream ceiling formula assumes the CPU is free.
 *
 * Contract: reads the first `blocks` listed blocks of `snapshotId` once each; returns requests/s,
 * MB/s, p50 latency and the client's CPU seconds. Throws on a checksum mismatch.
 * rawPutCeiling is the same for PutSnapshotBlock (what a commit does without the journal): one
 * new snapshot of `blocks` distinct random blocks, each hashed as the committer hashes it.
 */
import { randomFillSync } from 'node:crypto';
import { createEbsApi } from '../../src/ebs/client-options.js';
import { sha256Base64Async } from '../../src/ebs/checksum.js';
import { BLOCK_SIZE } from '../../src/ebs/constants.js';
import { MB, median } from './stats.js';

export interface RawApiResult {
  latencyMs: number;
  concurrency: number;
  blocks: number;
  requestsPerSecond: number;
  mbps: number;
  p50Ms: number;
  clientCpuSeconds: number;
}

/** Runs `request(i, worker)` for i in [0, count) with `concurrency` workers; times each call. */
async function timedRequests(
  opts: { count: number; concurrency: number; latencyMs: number },
  request: (i: number, worker: number) => Promise<void>,
): Promise<RawApiResult> {
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: opts.concurrency }, async (_, worker) => {
      while (next < opts.count) {
        const i = next++;
        const s = performance.now();
        await request(i, worker);
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    latencyMs: opts.latencyMs,
    concurrency: opts.concurrency,
    blocks: opts.count,
    requestsPerSecond: opts.count / seconds,
    mbps: (opts.count * BLOCK_SIZE) / seconds / MB,
    p50Ms: median(latencies),
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

export async function rawApiCeiling(opts: { endpoint: string; snapshotId: string; concurrency: number; blocks: number; latencyMs: number }): Promise<RawApiResult> {
  const api = createEbsApi({ endpoint: opts.endpoint, maxSockets: opts.concurrency + 8 });
  const page = await api.listSnapshotBlocks(opts.snapshotId, { startingBlockIndex: 0, maxResults: 10_000 });
  const blocks = page.blocks.slice(0, opts.blocks);
  try {
    return await timedRequests({ count: blocks.length, concurrency: opts.concurrency, latencyMs: opts.latencyMs }, async (i) => {
      const b = blocks[i]!;
      const d = await api.getSnapshotBlock(opts.snapshotId, b.index, b.token);
      if ((await sha256Base64Async(d.data)) !== d.checksum) throw new Error(`checksum mismatch at block ${b.index}`);
    });
  } finally {
    api.close?.();
  }
}

export async function rawPutCeiling(opts: { endpoint: string; concurrency: number; blocks: number; latencyMs: number }): Promise<RawApiResult> {
  const api = createEbsApi({ endpoint: opts.endpoint, maxSockets: opts.concurrency + 8 });
  const volumeSizeGiB = Math.max(1, Math.ceil((opts.blocks * BLOCK_SIZE) / 2 ** 30));
  try {
    const snap = await api.startSnapshot({ volumeSizeGiB });
    // One buffer per worker, made distinct per block by its first bytes (random content once).
    const buffers = Array.from({ length: opts.concurrency }, () => randomFillSync(Buffer.alloc(BLOCK_SIZE)));
    const result = await timedRequests({ count: opts.blocks, concurrency: opts.concurrency, latencyMs: opts.latencyMs }, async (i, worker) => {
      const buf = buffers[worker]!;
      buf.writeUInt32LE(i, 0);
      await api.putSnapshotBlock(snap.snapshotId, i, buf, await sha256Base64Async(buf));
    });
    await api.completeSnapshot(snap.snapshotId, opts.blocks);
    return result;
  } finally {
    api.close?.();
  }
}
