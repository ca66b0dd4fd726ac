/**
 * JournalFs: every file operation the journal makes, behind one interface, so that what is
 * durable when can be tested — the power-loss test runs the journal on a double that keeps only
 * what was fdatasync'ed (plus torn writes) and cuts the power at many points
 * (test/unit/writeback/power-loss-fs.ts).
 *
 * Contract (what the journal relies on, as POSIX gives it on a local filesystem):
 * - JournalFile.write/read are positional; nothing written is durable until datasync()/sync()
 *   returns; unsynced writes may survive a crash in part, in any order (torn).
 * - A new name (create, rename) is durable once fsyncDir(dir) returns; rename is atomic.
 * - lock(dir): one process per journal (journal-lock.ts for the real filesystem).
 * nodeJournalFs is the real thing (node:fs/promises).
 */
import { mkdir, open, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireJournalLock, type JournalLock } from './journal-lock.js';

export interface JournalFile {
  read(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  write(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export type OpenMode = 'r' | 'r+' | 'w' | 'w+';

export interface JournalFs {
  open(path: string, mode: OpenMode): Promise<JournalFile>;
  readText(path: string): Promise<string>;
  exists(path: string): Promise<boolean>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Removes a file or a whole directory; missing is fine. */
  remove(path: string): Promise<void>;
  mkdirp(path: string): Promise<void>;
  fsyncDir(dir: string): Promise<void>;
  lock(dir: string): Promise<JournalLock>;
}

class NodeFile implements JournalFile {
  constructor(private readonly fh: FileHandle) {}
  read(buf: Buffer, offset: number, length: number, position: number) {
    return this.fh.read(buf, offset, length, position);
  }
  write(buf: Buffer, offset: number, length: number, position: number) {
    return this.fh.write(buf, offset, length, position);
  }
  datasync() {
    return this.fh.datasync();
  }
  sync() {
    return this.fh.sync();
  }
  truncate(length: number) {
    return this.fh.truncate(length);
  }
  async size() {
    return (await this.fh.stat()).size;
  }
  close() {
    return this.fh.close();
  }
}

export const nodeJournalFs: JournalFs = {
  async open(path, mode) {
    return new NodeFile(await open(path, mode, 0o600));
  },
  readText: (path) => readFile(path, 'utf8'),
  async exists(path) {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  },
  rename: (from, to) => rename(from, to),
  unlink: (path) => unlink(path),
  remove: (path) => rm(path, { recursive: true, force: true }),
  async mkdirp(path) {
    await mkdir(path, { recursive: true, mode: 0o700 });
  },
  async fsyncDir(dir) {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  lock: (dir) => acquireJournalLock(dir),
};

/** Writes `name` in `dir` atomically and durably: tmp file, fsync, rename, fsync of the dir. */
export async function writeFileAtomicFs(fs: JournalFs, dir: string, name: string, content: string | Buffer): Promise<void> {
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  const f = await fs.open(tmp, 'w');
  try {
    await writeFully(f, data, 0, data.length, 0);
    await f.sync();
  } finally {
    await f.close();
  }
  await fs.rename(tmp, join(dir, name));
  await fs.fsyncDir(dir);
}

export async function readFully(f: JournalFile, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await f.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error(`short read in journal at ${position + done}`);
    done += bytesRead;
  }
}

export async function writeFully(f: JournalFile, buf: Buffer, offset: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await f.write(buf, offset + done, length - done, position + done);
    done += bytesWritten;
  }
}
