/**
 * The hash worker thread (hash-workers.ts starts it): SHA-256 of the bytes it is handed.
 *
 * Protocol: receives `{ id, ab: ArrayBuffer, off, len }` (the ArrayBuffer transferred, not
 * copied), answers `{ id, digest, ab }` (the raw 32 bytes, the ArrayBuffer transferred back) or
 * `{ id, error, ab }`.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

interface Job {
  id: number;
  ab: ArrayBuffer;
  off: number;
  len: number;
}

parentPort!.on('message', (m: Job) => {
  try {
    const digest = createHash('sha256').update(new Uint8Array(m.ab, m.off, m.len)).digest();
    parentPort!.postMessage({ id: m.id, digest, ab: m.ab }, [m.ab]);
  } catch (err) {
    parentPort!.postMessage({ id: m.id, error: String((err as Error)?.message ?? err), ab: m.ab }, [m.ab]);
  }
});
