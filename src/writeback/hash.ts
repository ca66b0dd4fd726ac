/**
 * SHA-256 off the main thread: WebCrypto's digest runs as a libuv threadpool job, so hashing
 * 512 KiB blocks (~0.3 ms each) does not stall FUSE ops and HTTP on the event loop, and several
 * blocks hash in parallel on several cores.
 *
 * Contract: sha256Base64Async(data) takes a copy of `data` before it returns (Node copies the
 * bytes into the job synchronously), so the caller may reuse or change the buffer right away;
 * it resolves to the base64 SHA-256 of the bytes as they were at the call.
 */
import { webcrypto } from 'node:crypto';

export async function sha256Base64Async(data: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('base64');
}
