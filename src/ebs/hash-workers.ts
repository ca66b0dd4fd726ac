/**
 * HashWorkers: SHA-256 on worker threads, so hashing 512 KiB blocks (1–2 ms each on the bench
 * machine) never runs on the event loop that serves FUSE and HTTP, and uses the other cores.
 * (WebCrypto's subtle.digest hashes in the threadpool but first copies its input on the calling
 * thread: measured on the bench machine, that copy costs about as much as the hash itself.)
 *
 * Contract:
 * - `digestOwned(buf)` resolves with the raw 32-byte SHA-256 of `buf` and the buffer itself: its
 *   memory is transferred to a worker and back (no copy), so `buf` is detached (empty) meanwhile
 *   and the caller must use the returned `data` afterwards. For buffers the caller alone holds (a
 *   block just received). A view into a larger allocation is copied instead (and returned as is).
 * - `digest(data)` resolves with the SHA-256 of `data`, which is copied once into a scratch buffer
 *   (transferred likewise; at most `scratchBlocks` kept); `data` stays usable.
 * - (Transfers, not SharedArrayBuffers: copying socket chunks into shared memory was measured 3×
 *   slower than into an ordinary buffer.)
 * - `threads` workers (default: the cores less one, at least 1, at most 4), started on first use;
 *   jobs go to the online worker with the fewest outstanding. Until one is online (a thread takes
 *   tens of ms to start) a digest is computed on the calling thread, so the first hashes of a
 *   process never wait for a thread to start. A worker is ref'd only while it has jobs,
 *   so an idle pool never keeps the process alive and a pending hash always does.
 * - A worker that dies fails its outstanding jobs (rejects with the reason) and is replaced on the
 *   next job. `close()` ends the workers (tests).
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BLOCK_SIZE } from './constants.js';

interface Pending {
  resolve: (r: { digest: Buffer; ab: ArrayBuffer }) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  /** The thread runs (its startup takes tens of ms: until then hashes run here). */
  online: boolean;
}

export class HashWorkers {
  readonly threads: number;
  private readonly slots: (Slot | undefined)[];
  private readonly scratch: ArrayBuffer[] = [];
  private nextId = 1;

  constructor(threads = Math.min(4, Math.max(1, availableParallelism() - 1)), private readonly scratchBlocks = 16) {
    this.threads = threads;
    this.slots = new Array(threads).fill(undefined);
  }

  async digest(data: Uint8Array): Promise<Buffer> {
    if (!this.anyOnline()) return createHash('sha256').update(data).digest();
    const len = data.byteLength;
    const scratch = len <= BLOCK_SIZE ? (this.scratch.pop() ?? new ArrayBuffer(BLOCK_SIZE)) : new ArrayBuffer(len);
    new Uint8Array(scratch, 0, len).set(data);
    const r = await this.send(scratch, 0, len);
    if (r.ab.byteLength === BLOCK_SIZE && this.scratch.length < this.scratchBlocks) this.scratch.push(r.ab);
    return r.digest;
  }

  async digestOwned(buf: Buffer): Promise<{ digest: Buffer; data: Buffer }> {
    const ab = buf.buffer;
    if (!this.anyOnline()) return { digest: createHash('sha256').update(buf).digest(), data: buf };
    if (ab instanceof SharedArrayBuffer || buf.byteOffset !== 0 || ab.byteLength !== buf.length) {
      return { digest: await this.digest(buf), data: buf };
    }
    const r = await this.send(ab, 0, buf.length);
    return { digest: r.digest, data: Buffer.from(r.ab) };
  }

  private send(ab: ArrayBuffer, off: number, len: number): Promise<{ digest: Buffer; ab: ArrayBuffer }> {
    return new Promise((resolve, reject) => {
      const slot = this.pick();
      const id = this.nextId++;
      if (slot.pending.size === 0) slot.worker.ref();
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, ab, off, len }, [ab]);
    });
  }

  close(): void {
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      this.slots[i] = undefined;
      if (s) void s.worker.terminate();
    }
  }

  /** Starts missing workers; true when at least one is online. */
  private anyOnline(): boolean {
    let online = false;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i] ?? (this.slots[i] = this.start(i));
      online ||= s.online;
    }
    return online;
  }

  private pick(): Slot {
    let best: Slot | undefined;
    for (const s of this.slots) {
      if (!s?.online) continue;
      if (!best || s.pending.size < best.pending.size) best = s;
      if (s.pending.size === 0) break;
    }
    return best!;
  }

  private start(i: number): Slot {
    const worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    worker.unref();
    const slot: Slot = { worker, pending: new Map(), online: false };
    worker.once('online', () => {
      slot.online = true;
      // An unref() before the thread is online does not stick (measured): again, unless busy.
      if (slot.pending.size === 0) worker.unref();
    });
    worker.on('message', (m: { id: number; digest?: Uint8Array; error?: string; ab: ArrayBuffer }) => {
      const job = slot.pending.get(m.id);
      if (!job) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      if (m.digest) job.resolve({ digest: Buffer.from(m.digest.buffer, m.digest.byteOffset, m.digest.byteLength), ab: m.ab });
      else job.reject(new Error(`hash worker: ${m.error}`));
    });
    const fail = (err: Error): void => {
      slot.online = false;
      if (this.slots[i] === slot) this.slots[i] = undefined;
      for (const job of slot.pending.values()) job.reject(err);
      slot.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`hash worker exited (${code})`)));
    return slot;
  }
}
