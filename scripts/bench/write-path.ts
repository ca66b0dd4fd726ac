#!/usr/bin/env node
/**
 * write-path: the writable mount's data path measured in-process, without FUSE — how fast
 * sequential writes reach the journal (and become durable) and how fast a commit uploads them.
 *
 *   node dist/scripts/bench/write-path.js [--mib N] [--piece-kib K] [--latency-ms L]
 *     [--upload-concurrency C] [--no-commit] [--parent zeros|random] [--journal-root DIR]
 *
 * A MemoryEbsApi holds a parent snapshot of N MiB (random data by default, so a partial write
 * of a block would have to fetch it) with `latencyMs` on every call. The volume is opened like a
 * mount opens it (openSnapshotVolume → openWritableLayer → makeVolumeFile), N MiB of random
 * data is written sequentially in K KiB pieces, one write at a time (as one dd through FUSE
 * does), then flushed (fsync); then the layer is committed. Prints one JSON line per phase:
 * MB/s (10^6 bytes/s), parent reads, and the API call counts.
 */
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../src/ebs/constants.js';
import { MemoryEbsApi } from '../../src/ebs/memory-api.js';
import { makeVolumeFile, openSnapshotVolume } from '../../src/store/open-volume.js';
import { openWritableLayer } from '../../src/writeback/writable-layer.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const MIB = 1024 * 1024;
const mib = Number(arg('mib', '256'));
const pieceBytes = Number(arg('piece-kib', '128')) * 1024;
const latencyMs = Number(arg('latency-ms', '20'));
const uploadConcurrency = Number(arg('upload-concurrency', '64'));
const parentKind = arg('parent', 'random');
const doCommit = !process.argv.includes('--no-commit');
const root = arg('journal-root', '');

async function main(): Promise<void> {
  const api = new MemoryEbsApi();
  const blocks = new Map<number, Buffer>();
  const volumeGiB = Math.max(1, Math.ceil(mib / 1024));
  const nBlocks = (mib * MIB) / BLOCK_SIZE;
  if (parentKind === 'random') {
    for (let i = 0; i < nBlocks; i++) blocks.set(i, randomFillSync(Buffer.allocUnsafe(BLOCK_SIZE)));
  }
  const parent = api.createCompletedSnapshot(blocks, volumeGiB);
  api.latencyMs = latencyMs;
  const dir = await mkdtemp(join(root || tmpdir(), 'ebsmount-wpath-'));
  const opened = await openSnapshotVolume(api, parent, { backgroundCount: false });
  const layer = await openWritableLayer(opened, { api, journalRoot: dir, uploadConcurrency });
  const file = makeVolumeFile(opened, layer.writer, layer.reader);
  try {
    const src = randomFillSync(Buffer.allocUnsafe(Math.max(pieceBytes, MIB) * 4));
    const total = mib * MIB;
    const t0 = performance.now();
    for (let pos = 0; pos < total; pos += pieceBytes) {
      const off = (pos / pieceBytes) % Math.floor(src.length / pieceBytes) * pieceBytes;
      const n = await file.write(src.subarray(off, off + pieceBytes), pieceBytes, pos);
      if (n !== pieceBytes) throw new Error(`short write at ${pos}`);
    }
    const t1 = performance.now();
    await file.flush();
    const t2 = performance.now();
    const gets = api.counts('getSnapshotBlock');
    console.log(JSON.stringify({
      phase: 'write', mib, pieceKiB: pieceBytes / 1024, latencyMs,
      mbps: +(total / ((t2 - t0) / 1000) / 1e6).toFixed(1),
      writeSeconds: +((t1 - t0) / 1000).toFixed(2), flushSeconds: +((t2 - t1) / 1000).toFixed(2),
      parentGets: gets, dirtyBlocks: layer.dirtyBlockCount(),
    }));
    if (doCommit) {
      const t3 = performance.now();
      const r = await layer.commit();
      const t4 = performance.now();
      console.log(JSON.stringify({
        phase: 'commit', mib, latencyMs, uploadConcurrency,
        mbps: +(total / ((t4 - t3) / 1000) / 1e6).toFixed(1), seconds: +((t4 - t3) / 1000).toFixed(2),
        puts: api.counts('putSnapshotBlock'), snapshotId: r.snapshotId,
        ceilingMbps: +((uploadConcurrency * BLOCK_SIZE) / (latencyMs / 1000 || 1e-9) / 1e6).toFixed(1),
      }));
    }
  } finally {
    await layer.close().catch(() => {});
    opened.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
