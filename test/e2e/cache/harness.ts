/**
 * Shared pieces of the disk-cache and lineage end-to-end tests: a server that logs every request
 * (so the tests count GetSnapshotBlock on the server side, not only in `status`), snapshots built
 * block by block through the SDK, reads of a mounted image, and checks of a cache directory.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.js';

export const BLOCK = 524_288;

/** A local server whose log (debug level) names every request. */
export async function startCountingServer(args: string[] = []): Promise<TestServer> {
  const saved = process.env.EBSMOUNT_LOG_LEVEL;
  process.env.EBSMOUNT_LOG_LEVEL = 'debug';
  try {
    return await startServer({ args });
  } finally {
    if (saved === undefined) delete process.env.EBSMOUNT_LOG_LEVEL;
    else process.env.EBSMOUNT_LOG_LEVEL = saved;
  }
}

/** GetSnapshotBlock requests the server answered for `snapshotId` so far (from its log). */
export function serverGets(server: TestServer, snapshotId: string): number {
  let n = 0;
  for (const line of server.stderr().split('\n')) {
    if (!line.includes('"GetSnapshotBlock"') || !line.includes(snapshotId)) continue;
    try {
      const rec = JSON.parse(line) as { msg?: string; op?: string; snapshotId?: string };
      if (rec.msg === 'request' && rec.op === 'GetSnapshotBlock' && rec.snapshotId === snapshotId) n++;
    } catch {
      /* a partial line */
    }
  }
  return n;
}

/** The first `blocks` blocks of a mounted image. */
export async function readImage(path: string, blocks: number): Promise<Buffer> {
  const out = Buffer.alloc(blocks * BLOCK);
  const fh = await open(path, 'r');
  try {
    let n = 0;
    while (n < out.length) {
      const r = await fh.read(out, n, Math.min(1 << 20, out.length - n), n);
      if (r.bytesRead === 0) break;
      n += r.bytesRead;
    }
  } finally {
    await fh.close();
  }
  return out;
}

/** The volume's first `blocks` blocks as the snapshot holds them (zeros where it has none). */
export function expected(model: Map<number, Buffer>, blocks: number): Buffer {
  const out = Buffer.alloc(blocks * BLOCK);
  for (const [i, b] of model) if (i < blocks) b.copy(out, i * BLOCK);
  return out;
}

/** Indexes of the blocks where two buffers of whole blocks differ (for readable failures). */
export function differingBlocks(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i * BLOCK < Math.max(a.length, b.length); i++) {
    if (!a.subarray(i * BLOCK, (i + 1) * BLOCK).equals(b.subarray(i * BLOCK, (i + 1) * BLOCK))) out.push(i);
  }
  return out;
}

export function blobFiles(cacheDir: string): string[] {
  const root = join(cacheDir, 'blobs');
  const out: string[] = [];
  for (const sub of readdirSync(root)) for (const f of readdirSync(join(root, sub))) out.push(join(root, sub, f));
  return out;
}

export function blobFileOf(cacheDir: string, data: Buffer): string | undefined {
  const hex = createHash('sha256').update(data).digest('hex');
  return blobFiles(cacheDir).find((f) => f.split('/').pop()!.startsWith(`${hex}-`));
}

/** Every blob file whose content does not match the SHA-256 in its name. */
export function badBlobFiles(cacheDir: string): string[] {
  return blobFiles(cacheDir).filter((f) => {
    const hex = f.split('/').pop()!.split('-')[0]!;
    return createHash('sha256').update(readFileSync(f)).digest('hex') !== hex;
  });
}

export function blobBytes(cacheDir: string): number {
  return blobFiles(cacheDir).reduce((n, f) => n + statSync(f).size, 0);
}
