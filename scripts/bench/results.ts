/**
 * The shape of docs/bench/results.json: every figure one benchmark run measured, plus the machine
 * and the settings. Phases that failed leave their part undefined and add an entry to `errors`.
 * Rates are MB/s (10^6 B/s), sizes bytes, times ms unless the name says seconds.
 */
import type { MachineInfo } from './system.js';
import type { RandomReadResult } from './fio.js';
import type { TargetResult } from './targets.js';
import type { RawApiResult } from './raw-api.js';

export interface ColdRead {
  mbps: number;
  seconds: number;
  bytes: number;
  mountMs: number;
  /** ebs.get.requests of the mount after the read. */
  getRequests?: number;
  blocksFetched?: number;
  /** Blocks the reader touched (bytes / 512 KiB). */
  blocksRead: number;
  requestsPerBlock?: number;
  rssPeakBytes?: number;
  daemonCpuSeconds?: number;
  serverCpuSeconds?: number;
  stats?: unknown;
}

export interface WarmRead {
  /** The read that filled the cache (itself cold). */
  fillMbps: number;
  /** Best of the reads with the page cache dropped and every block in ebsmount's cache. */
  mbps: number;
  runsMbps: number[];
  /** Second read without dropping the page cache. */
  pageCacheMbps: number;
  rssPeakBytes?: number;
  cacheBytes: number;
  stats?: unknown;
}

export interface LatencyRun {
  latencyMs: number;
  upstreamCeilingMbps: number;
  /** GetSnapshotBlock through the EbsApi alone on this machine (scripts/bench/raw-api.ts). */
  rawApi?: RawApiResult;
  /** The same through the AWS SDK's GetSnapshotBlock, measured just before (side by side). */
  rawApiSdk?: RawApiResult;
  cold?: ColdRead;
  warm?: WarmRead;
}

export interface RandomRun extends RandomReadResult {
  getRequests?: number;
  requestsPerRead?: number;
  stats?: unknown;
}

export interface BenchResults {
  tool: 'ebsmount bench';
  machine: MachineInfo;
  settings: Record<string, unknown>;
  durationSeconds?: number;
  setup: { imageBytes: number; importSeconds?: number; snapshotId?: string; ext4SnapshotId?: string };
  ceilings: {
    localColdMbps?: number;
    localPageCacheMbps?: number;
    memfuseMbps?: number;
    memfuseRunsMbps?: number[];
    /** The random-read plans of (d) against memfuse with the same latency added per read. */
    memfuseRandom?: { latencyMs: number; qd1: RandomReadResult; qd32: RandomReadResult };
  };
  sequential: LatencyRun[];
  ext4?: ColdRead & { latencyMs: number; fileBytes: number; upstreamCeilingMbps: number };
  random?: { latencyMs: number; qd1?: RandomRun; qd32?: RandomRun };
  sparse?: {
    volumeGiB: number;
    blocks: number;
    buildSeconds: number;
    mountMs: number[];
    mountMsMedian: number;
    rssAfterMountBytes?: number;
    rssAfterReadsBytes?: number;
    scatteredReads: number;
    cacheBytes: number;
    stats?: unknown;
  };
  commit?: {
    latencyMs: number;
    bytes: number;
    writeMbps: number;
    unmountSeconds: number;
    mbps: number;
    ceilingMbps: number;
    uploadConcurrency: number;
    /** PutSnapshotBlock alone at the same concurrency, just before the commit (this machine's ceiling). */
    rawApi?: RawApiResult;
    childSnapshotId?: string;
    putRequests?: number;
  };
  /** `ebsmount export` of the random snapshot to a file (g). */
  exportRun?: {
    latencyMs: number;
    bytes: number;
    seconds: number;
    mbps: number;
    blocks: number;
    upstreamCeilingMbps: number;
    /** CPU of the export process (all threads), and per block. */
    cpuSeconds?: number;
    cpuMsPerBlock?: number;
    serverCpuSeconds?: number;
  };
  targets: TargetResult[];
  errors: { phase: string; message: string }[];
}
