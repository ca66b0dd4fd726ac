/**
 * BlockFiles: the local EBS server's content-addressed block storage, `DATA/blocks/ab/<sha256 hex>`.
 *
 * Contract:
 * - A block is stored once whatever number of snapshots (a whole lineage) reference it: `put` of
 *   content already stored (or being stored by a concurrent request) writes nothing.
 * - `put` resolves once the block file is durable: written with O_DSYNC straight to its final
 *   name (3 thread-pool operations: open, write, close — the hot path of PutSnapshotBlock), mode
 *   0600 in 0700 directories, O_EXCL | O_NOFOLLOW (a leftover file is removed and written anew). The new
 *   directory entry is fsync'ed by `syncDirs()`, which the metadata log runs before every flush,
 *   so a durable metadata record never names a block lost by a crash.
 *   No temp file + rename is needed: the metadata log is the only source of truth, and a block
 *   file is referenced only after `put` resolved. A file torn by a crash is never referenced, and
 *   after a restart content the log does not know is written again from scratch;
 *   content the log knows is never rewritten, so readers never see a partial file.
 * - The all-zero block is never written: it is served from memory.
 * - `read` fills a caller's buffer (the caller may modify it; the zero block included).
 * - A hash becomes a path only if it is 64 lowercase hex digits (`pathOf` throws otherwise).
 * - No synchronous fs calls after `init`; temp files of older versions are removed at `init`.
 */
import { close as closeCb, constants as fsConstants, open as openCb, read as readCb, write as writeCb } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_SIZE, ZERO_BLOCK_SHA256 } from '../ebs/constants.js';
import { ensurePrivateDir } from '../os/private-path.js';
import type { Logger } from '../util/log.js';

export const ZERO_SHA_HEX = Buffer.from(ZERO_BLOCK_SHA256, 'base64').toString('hex');
const SHA_HEX = /^[0-9a-f]{64}$/;
/** New block files: never through a symlink, never over an existing file, durable on write. */
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW | fsConstants.O_DSYNC;

export class BlockFiles {
  private readonly known = new Set<string>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly madeDirs = new Set<string>();
  private unsyncedDirs = new Set<string>();
  private stored = 0;

  constructor(
    readonly root: string,
    private readonly logger: Logger,
  ) {}

  async init(): Promise<void> {
    ensurePrivateDir(this.root);
    // Remove temp files a crash left behind (in the background: startup does not wait for it).
    void this.removeTempFiles().catch((err: unknown) => this.logger.warn({ err }, 'could not clean temp block files'));
  }

  /** Marks content as already stored (from the metadata log at startup). */
  markKnown(shaHex: string): void {
    if (shaHex !== ZERO_SHA_HEX) this.known.add(shaHex);
  }

  /** Number of distinct non-zero blocks referenced or stored. */
  get distinctBlocks(): number {
    return this.known.size;
  }

  /** Blocks this process wrote to disk (dedup misses). */
  get writtenBlocks(): number {
    return this.stored;
  }

  /** The file of a block; throws unless `shaHex` is 64 lowercase hex digits (never a path). */
  pathOf(shaHex: string): string {
    if (!SHA_HEX.test(shaHex)) throw new Error(`not a block hash: ${JSON.stringify(shaHex.slice(0, 80))}`);
    return join(this.root, shaHex.slice(0, 2), shaHex);
  }

  async put(shaHex: string, data: Buffer): Promise<void> {
    if (shaHex === ZERO_SHA_HEX || this.known.has(shaHex)) return;
    const running = this.inFlight.get(shaHex);
    if (running) return running;
    const p = this.write(shaHex, data).finally(() => this.inFlight.delete(shaHex));
    this.inFlight.set(shaHex, p);
    return p;
  }

  /** Reads a whole block into `into` (BLOCK_SIZE bytes); resolves with it. */
  async read(shaHex: string, into: Buffer = Buffer.allocUnsafe(BLOCK_SIZE)): Promise<Buffer> {
    if (into.length !== BLOCK_SIZE) throw new RangeError('read: buffer must be one block');
    if (shaHex === ZERO_SHA_HEX) return into.fill(0);
    const fd = await cbOpen(this.pathOf(shaHex), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      let off = 0;
      while (off < BLOCK_SIZE) {
        const n = await cbRead(fd, into, off, BLOCK_SIZE - off, off);
        if (n === 0) throw new Error(`block file ${shaHex} is shorter than a block (${off} bytes)`);
        off += n;
      }
      return into;
    } finally {
      closeCb(fd, () => {});
    }
  }

  /** fsyncs every directory that received a new block file since the last call. */
  async syncDirs(): Promise<void> {
    if (this.unsyncedDirs.size === 0) return;
    const dirs = [...this.unsyncedDirs];
    this.unsyncedDirs = new Set();
    await Promise.all(dirs.map((d) => fsyncDir(d)));
  }

  private async write(shaHex: string, data: Buffer): Promise<void> {
    const final = this.pathOf(shaHex);
    const dir = join(this.root, shaHex.slice(0, 2));
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      this.madeDirs.add(dir);
      this.unsyncedDirs.add(this.root);
    }
    let fd: number;
    try {
      fd = await cbOpen(final, CREATE_FLAGS, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A file the metadata never referenced (a crash between write and record): write it anew.
      await rm(final, { force: true });
      fd = await cbOpen(final, CREATE_FLAGS, 0o600);
    }
    try {
      let off = 0;
      while (off < data.length) off += await cbWrite(fd, data, off, data.length - off, off);
    } finally {
      await new Promise<void>((res) => closeCb(fd, () => res()));
    }
    this.unsyncedDirs.add(dir);
    this.known.add(shaHex);
    this.stored++;
  }

  private async removeTempFiles(): Promise<void> {
    const subdirs = await readdir(this.root).catch(() => [] as string[]);
    for (const sub of subdirs) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue;
      const dir = join(this.root, sub);
      this.madeDirs.add(dir);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (name.includes('.tmp-')) await rm(join(dir, name), { force: true });
      }
    }
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function cbOpen(path: string, flags: number, mode?: number): Promise<number> {
  return new Promise((res, rej) => openCb(path, flags, mode, (err, fd) => (err ? rej(err) : res(fd))));
}

function cbRead(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((res, rej) => readCb(fd, buf, off, len, pos, (err, n) => (err ? rej(err) : res(n))));
}

function cbWrite(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((res, rej) => writeCb(fd, buf, off, len, pos, (err, n) => (err ? rej(err) : res(n))));
}
