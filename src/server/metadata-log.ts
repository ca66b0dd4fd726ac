/**
 * MetadataLog: the local EBS server's durable record of snapshots — an append-only file of JSON
 * lines, each framed as `<crc32 of the JSON, 8 hex digits> <JSON>\n`.
 *
 * Contract:
 * - `append(record)` resolves only after the record is on disk (written and fdatasync'ed), so a
 *   caller that answers its client after awaiting it never acknowledges anything a kill -9 or a
 *   power cut can lose. Appends are group-committed: records queued while a flush runs go out
 *   together in the next single write + fdatasync, and keep their order.
 * - `beforeFlush` runs before each flush's write (the block store fsyncs the directories of
 *   newly renamed block files there, so a durable record never points at a lost rename).
 * - `open` replays the file: records in order; a torn or corrupt last line (a crash mid-write)
 *   is dropped and the file truncated to the last good line; a corrupt line followed by good ones
 *   is skipped with a warning (counted in `skipped`).
 * - One writer per file: the server holds a pid lock on its data directory.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

export interface ReplayResult<T> {
  log: MetadataLog;
  records: T[];
  /** Corrupt lines skipped in the middle of the file. */
  skipped: number;
  /** Bytes dropped from the end (a torn last write). */
  truncatedBytes: number;
}

interface Pending {
  line: Buffer;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class MetadataLog {
  private queue: Pending[] = [];
  private flushing = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  private constructor(
    private readonly fh: FileHandle,
    private readonly beforeFlush: () => Promise<void>,
  ) {}

  static async open<T = unknown>(path: string, opts: { beforeFlush?: () => Promise<void> } = {}): Promise<ReplayResult<T>> {
    const fh = await open(path, 'a+');
    const content = await fh.readFile();
    const records: T[] = [];
    let skipped = 0;
    let goodEnd = 0;
    let pos = 0;
    let badSinceGood = 0;
    while (pos < content.length) {
      const nl = content.indexOf(0x0a, pos);
      if (nl < 0) break; // torn last line: no newline
      const parsed = parseLine<T>(content.subarray(pos, nl));
      if (parsed === undefined) {
        badSinceGood++;
      } else {
        records.push(parsed);
        skipped += badSinceGood; // bad lines followed by good ones: skipped, not torn
        badSinceGood = 0;
        goodEnd = nl + 1;
      }
      pos = nl + 1;
    }
    const truncatedBytes = content.length - goodEnd;
    if (truncatedBytes > 0) {
      await fh.truncate(goodEnd);
      await fh.sync();
    }
    return { log: new MetadataLog(fh, opts.beforeFlush ?? (async () => {})), records, skipped, truncatedBytes };
  }

  append(record: unknown): Promise<void> {
    if (this.closed) return Promise.reject(new Error('metadata log is closed'));
    const json = JSON.stringify(record);
    const crc = crc32(json).toString(16).padStart(8, '0');
    const line = Buffer.from(`${crc} ${json}\n`);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, resolve, reject });
      if (!this.flushing) void this.flushLoop();
    });
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.flushing || this.queue.length > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
    this.closed = true;
    await this.fh.close();
  }

  private async flushLoop(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.beforeFlush();
          const buf = batch.length === 1 ? batch[0]!.line : Buffer.concat(batch.map((p) => p.line));
          let off = 0;
          while (off < buf.length) {
            const { bytesWritten } = await this.fh.write(buf, off, buf.length - off);
            off += bytesWritten;
          }
          await this.fh.datasync();
          for (const p of batch) p.resolve();
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.flushing = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

function parseLine<T>(line: Buffer): T | undefined {
  if (line.length < 10 || line[8] !== 0x20) return undefined;
  const crcHex = line.subarray(0, 8).toString('latin1');
  if (!/^[0-9a-f]{8}$/.test(crcHex)) return undefined;
  const json = line.subarray(9);
  if (crc32(json) !== parseInt(crcHex, 16)) return undefined;
  try {
    return JSON.parse(json.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}
