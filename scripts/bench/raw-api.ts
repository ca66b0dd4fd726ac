/**
 * The client-side ceiling of this machine: GetSnapshotBlock straight through ebsmount's own
 * EbsApi (the AWS SDK, the same http agent settings) with SHA-256 verification, `concurrency`
 * requests in flight, no FUSE, no cache. What the CPU (client + local server on the same cores)
 * lets any reader reach; the upstream ceiling formula assumes the CPU is free.
 *
 * Contract: reads the first `blocks` listed blocks of `snapshotId` once each; returns requests/s,
 * MB/s, p50 latency, the client's CPU seconds (all its threads: the hash workers included) and,
 * given the server's pid, the server's CPU seconds over the same interval. Throws on a checksum
 * mismatch. `client` picks the path (createEbsApi: 'lean', the default, or 'sdk'); either way a
 * body is verified as SnapshotStore does (moved to a hash worker and back) and its buffer
 * recycled through a BlockPool, as the cache does on eviction.
 * rawPutCeiling is the same for PutSnapshotBlock (what a commit does without the journal): one
 * new snapshot of `blocks` distinct random blocks, each hashed as the committer hashes it.
 */
import { randomFillSync } from 'node:crypto';
import { createEbsApi } from '../../src/ebs/client-options.js';
import { sha256Base64Async, sha256Owned } from '../../src/ebs/checksum.js';
import { BlockPool } from '../../src/ebs/block-pool.js';
import { cpuSeconds } from './system.js';
import { BLOCK_SIZE } from '../../src/ebs/constants.js';
import { MB, median } from './stats.js';

export interface RawApiResult {
  /** 'lean' or 'sdk' (absent in older results: the SDK). */
  client?: string;
  latencyMs: number;
  concurrency: number;
  blocks: number;
  requestsPerSecond: number;
  mbps: number;
  p50Ms: number;
  clientCpuSeconds: number;
  /** The local server's CPU over the same interval (all threads). */
  serverCpuSeconds?: number;
  /** Client CPU ms per block, and blocks per client CPU-second. */
  clientCpuMsPerBlock?: number;
  blocksPerCpuSecond?: number;
  serverCpuMsPerBlock?: number;
}

/** Runs `request(i, worker)` for i in [0, count) with `concurrency` workers; times each call. */
async function timedRequests(
  opts: { count: number; concurrency: number; latencyMs: number; serverPid?: number },
  request: (i: number, worker: number) => Promise<void>,
): Promise<RawApiResult> {
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const s0 = opts.serverPid ? cpuSeconds(opts.serverPid) : undefined;
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
  const s1 = opts.serverPid ? cpuSeconds(opts.serverPid) : undefined;
  const clientCpuSeconds = (cpu.user + cpu.system) / 1e6;
  const serverCpuSeconds = s0 !== undefined && s1 !== undefined ? s1 - s0 : undefined;
  return {
    latencyMs: opts.latencyMs,
    concurrency: opts.concurrency,
    blocks: opts.count,
    requestsPerSecond: opts.count / seconds,
    mbps: (opts.count * BLOCK_SIZE) / seconds / MB,
    p50Ms: median(latencies),
    clientCpuSeconds,
    serverCpuSeconds,
    clientCpuMsPerBlock: (clientCpuSeconds * 1000) / opts.count,
    blocksPerCpuSecond: opts.count / clientCpuSeconds,
    serverCpuMsPerBlock: serverCpuSeconds === undefined ? undefined : (serverCpuSeconds * 1000) / opts.count,
  };
}

export async function rawApiCeiling(opts: {
  endpoint: string; snapshotId: string; concurrency: number; blocks: number; latencyMs: number; client?: 'lean' | 'sdk'; serverPid?: number;
}): Promise<RawApiResult> {
  const client = opts.client ?? 'lean';
  const pool = new BlockPool(opts.concurrency + 8);
  const api = createEbsApi({ endpoint: opts.endpoint, maxSockets: opts.concurrency + 8, client, pool });
  const page = await api.listSnapshotBlocks(opts.snapshotId, { startingBlockIndex: 0, maxResults: 10_000 });
  const blocks = page.blocks.slice(0, opts.blocks);
  try {
    // Warm-up (sockets, JIT, hash workers) outside the measurement.
    await Promise.all(blocks.slice(0, 16).map((b) => api.getSnapshotBlock(opts.snapshotId, b.index, b.token)));
    const r = await timedRequests({ count: blocks.length, concurrency: opts.concurrency, latencyMs: opts.latencyMs, serverPid: opts.serverPid }, async (i) => {
      const b = blocks[i]!;
      const d = await api.getSnapshotBlock(opts.snapshotId, b.index, b.token);
      const h = await sha256Owned(d.data);
      if (h.digest.toString('base64') !== d.checksum) throw new Error(`checksum mismatch at block ${b.index}`);
      pool.give(h.data);
    });
    return { ...r, client };
  } finally {
    api.close?.();
  }
}

export async function rawPutCeiling(opts: { endpoint: string; concurrency: number; blocks: number; latencyMs: number; serverPid?: number }): Promise<RawApiResult> {
  const api = createEbsApi({ endpoint: opts.endpoint, maxSockets: opts.concurrency + 8 });
  const volumeSizeGiB = Math.max(1, Math.ceil((opts.blocks * BLOCK_SIZE) / 2 ** 30));
  try {
    const snap = await api.startSnapshot({ volumeSizeGiB });
    // One buffer per worker, made distinct per block by its first bytes (random content once).
    const buffers = Array.from({ length: opts.concurrency }, () => randomFillSync(Buffer.alloc(BLOCK_SIZE)));
    const result = await timedRequests({ count: opts.blocks, concurrency: opts.concurrency, latencyMs: opts.latencyMs, serverPid: opts.serverPid }, async (i, worker) => {
      const buf = buffers[worker]!;
      buf.writeUInt32LE(i, 0);
      await api.putSnapshotBlock(snap.snapshotId, i, buf, await sha256Base64Async(buf));
    });
    await api.completeSnapshot(snap.snapshotId, opts.blocks);
    return { ...result, client: 'lean' };
  } finally {
    api.close?.();
  }
}
