/**
 * The client-side ceiling of this machine: GetSnapshotBlock straight through ebsmount's own
 * EbsApi (the AWS SDK, the same http agent settings) with SHA-256 verification, `concurrency`
 * requests in flight, no FUSE, no cache. What the CPU (client + local server on the same cores)
 * lets any reader reach; the upstream ceiling formula assumes the CPU is free.
 *
 * Contract: reads the first `blocks` listed blocks of `snapshotId` once each; returns requests/s,
 * MB/s, p50 latency and the client's CPU seconds. Throws on a checksum mismatch.
 */
import { createEbsApi } from '../../src/ebs/client-options.js';
import { sha256Base64 } from '../../src/ebs/checksum.js';
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

export async function rawApiCeiling(opts: { endpoint: string; snapshotId: string; concurrency: number; blocks: number; latencyMs: number }): Promise<RawApiResult> {
  const api = createEbsApi({ endpoint: opts.endpoint, maxSockets: opts.concurrency + 8 });
  const page = await api.listSnapshotBlocks(opts.snapshotId, { startingBlockIndex: 0, maxResults: 10_000 });
  const blocks = page.blocks.slice(0, opts.blocks);
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (next < blocks.length) {
        const b = blocks[next++]!;
        const s = performance.now();
        const d = await api.getSnapshotBlock(opts.snapshotId, b.index, b.token);
        if (sha256Base64(d.data) !== d.checksum) throw new Error(`checksum mismatch at block ${b.index}`);
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    latencyMs: opts.latencyMs,
    concurrency: opts.concurrency,
    blocks: blocks.length,
    requestsPerSecond: blocks.length / seconds,
    mbps: (blocks.length * BLOCK_SIZE) / seconds / MB,
    p50Ms: median(latencies),
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}
