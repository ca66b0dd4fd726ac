/**
 * Checksums of the EBS direct APIs: base64 SHA-256 per block, and the LINEAR aggregate that
 * CompleteSnapshot checks: SHA-256 over the raw 32-byte digests of every written block, in
 * ascending block index order.
 *
 * The *Async variants hash off the main thread, on worker threads (hash-workers.ts), so hashing
 * 512 KiB blocks (1–2 ms each on the bench machine) does not stall FUSE ops and HTTP on the event
 * loop, and several blocks hash in parallel on several cores. `sha256Owned` moves a buffer the
 * caller alone holds to a worker and back (no copy; use the returned buffer); the others copy
 * the data once. At most HASH_JOBS digests are outstanding at once (the rest wait in FIFO
 * order), so the copies stay a few blocks whatever the number of callers. The caller must not
 * change `data` until the promise settles.
 */
import { createHash } from 'node:crypto';
import { HashWorkers } from './hash-workers.js';
import { BLOCK_SIZE, ZERO_BLOCK_SHA256 } from './constants.js';

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export function sha256Base64(data: Uint8Array): string {
  return sha256(data).toString('base64');
}

/**
 * Digests outstanding at once: enough to keep every hash worker busy while results travel back,
 * few enough that the scratch copies of unshared data stay at 4 MiB.
 */
export const HASH_JOBS = 8;
let hashJobsRunning = 0;
const hashWaiters: (() => void)[] = [];
let workers: HashWorkers | undefined;

/** Digests running now (for tests): never above HASH_JOBS. */
export function runningHashJobs(): number {
  return hashJobsRunning;
}

async function hashJob<T>(run: (w: HashWorkers) => Promise<T>): Promise<T> {
  if (hashJobsRunning >= HASH_JOBS) await new Promise<void>((resolve) => hashWaiters.push(resolve));
  else hashJobsRunning++;
  try {
    return await run((workers ??= new HashWorkers()));
  } finally {
    // Hand the slot straight to the next waiter (the running count stays), or free it.
    const next = hashWaiters.shift();
    if (next) next();
    else hashJobsRunning--;
  }
}

export function sha256Async(data: Uint8Array): Promise<Buffer> {
  return hashJob((w) => w.digest(data));
}

/** SHA-256 of a buffer the caller alone holds, moved to a worker and back: use the returned `data`. */
export function sha256Owned(buf: Buffer): Promise<{ digest: Buffer; data: Buffer }> {
  return hashJob((w) => w.digestOwned(buf));
}

export async function sha256Base64Async(data: Uint8Array): Promise<string> {
  return (await sha256Async(data)).toString('base64');
}

/** True when every byte of `data` is zero. Fast path: compares 8 bytes at a time. */
export function isAllZero(data: Uint8Array): boolean {
  const len = data.byteLength;
  let i = 0;
  if (data.byteOffset % 8 === 0) {
    const words = new BigUint64Array(data.buffer, data.byteOffset, len >>> 3);
    for (let w = 0; w < words.length; w++) if (words[w] !== 0n) return false;
    i = words.length * 8;
  }
  for (; i < len; i++) if (data[i] !== 0) return false;
  return true;
}

/** base64 checksum of a full block; avoids hashing when the block is all zeros. */
export function blockChecksum(data: Uint8Array): string {
  if (data.byteLength === BLOCK_SIZE && isAllZero(data)) return ZERO_BLOCK_SHA256;
  return sha256Base64(data);
}

/**
 * Accumulates the LINEAR aggregate checksum. Blocks may be added in any order (puts complete out
 * of order); `digest()` sorts by block index.
 */
export class LinearChecksum {
  private readonly digests = new Map<number, Buffer>();

  add(blockIndex: number, checksumBase64: string): void {
    this.digests.set(blockIndex, Buffer.from(checksumBase64, 'base64'));
  }

  get count(): number {
    return this.digests.size;
  }

  digest(): string {
    const indexes = [...this.digests.keys()].sort((a, b) => a - b);
    const h = createHash('sha256');
    for (const i of indexes) h.update(this.digests.get(i)!);
    return h.digest('base64');
  }
}

export function linearChecksum(blocks: Iterable<[index: number, checksumBase64: string]>): string {
  const lc = new LinearChecksum();
  for (const [i, c] of blocks) lc.add(i, c);
  return lc.digest();
}
