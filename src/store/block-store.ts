/**
 * The block-store contracts every layer of the stack implements or consumes (DESIGN §3).
 *
 * - BlockReader.readBlock resolves to the whole 512 KiB block, or null when the block reads as
 *   zeros (never written). It never resolves to unverified bytes; it rejects with IoError('EIO')
 *   when the block cannot be read. Callers must not modify the returned buffer (it may be the
 *   cached copy).
 * - BlockWriter.writeBlockRange writes `data` at `offsetInBlock` of block `index` (the writer does
 *   read-modify-write and per-block locking). `data` is only valid until the returned promise
 *   settles: a writer that keeps it must copy it.
 * - `signal` (ReadBlockOptions, WriteBlockOptions): the operation's deadline (src/fs/op-deadline.ts).
 *   Once it aborts, the call rejects promptly (waits in queues, locks, listings and retries end)
 *   and a write that has not reached the journal yet is not applied; shared work (a fetch other
 *   readers wait for too) goes on. Without a signal nothing is abandoned.
 * - ReadObserver is told which blocks a read touches, before the read awaits them (read-ahead).
 */
import type { Priority } from '../ebs/limiter.js';

export type { Priority };

export interface ReadBlockOptions {
  priority?: Priority;
  signal?: AbortSignal;
}

export interface WriteBlockOptions {
  signal?: AbortSignal;
}

export interface BlockReader {
  /** 512 KiB content, or null when the block reads as zeros. Never unverified bytes. */
  readBlock(index: number, opts?: ReadBlockOptions): Promise<Buffer | null>;
}

export interface BlockWriter {
  writeBlockRange(index: number, offsetInBlock: number, data: Buffer, opts?: WriteBlockOptions): Promise<void>;
  /** make all writes durable (`signal` ends waits on the parent's blocks, not the journal's fsync) */
  flush(opts?: WriteBlockOptions): Promise<void>;
}

export interface ReadObserver {
  onRead(firstBlock: number, lastBlock: number): void;
}
