/**
 * BlockFiles: the local EBS server's content-addressed block storage, `DATA/blocks/ab/<sha256 hex>`.
 *
 * Contract:
 * - A block is stored once whatever number of snapshots (a whole lineage) reference it: `put` of
 *   content already stored (or being stored by a concurrent request) writes nothing.
 * - `put` resolves once the block file is durable: written to a temp name, fsync'ed, renamed into
 *   place. The rename's directory is fsync'ed by `syncDirs()`, which the metadata log runs before
 *   every flush, so a durable metadata record never names a block lost by a crash.
 * - The all-zero block is never written: it is served from memory.
 * - `read` returns a fresh Buffer the caller may modify (the zero block included).
 * - No synchronous fs calls; stale temp files of a crashed run are removed at `init`.
 */
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BLOCK_SIZE, ZERO_BLOCK_SHA256 } from '../ebs/constants.js';
import type { Logger } from '../util/log.js';

export const ZERO_SHA_HEX = Buffer.from(ZERO_BLOCK_SHA256, 'base64').toString('hex');

export class BlockFiles {
  private readonly known = new Set<string>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly madeDirs = new Set<string>();
  private unsyncedDirs = new Set<string>();
  private stored = 0;
  /** Temp names of this process carry this tag, so startup cleanup spares them. */
  private readonly tmpTag = randomBytes(4).toString('hex');

  constructor(
    readonly root: string,
    private readonly logger: Logger,
  ) {}

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
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

  pathOf(shaHex: string): string {
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

  async read(shaHex: string): Promise<Buffer> {
    if (shaHex === ZERO_SHA_HEX) return Buffer.alloc(BLOCK_SIZE);
    return readFile(this.pathOf(shaHex));
  }

  /** fsyncs every directory that received a rename since the last call. */
  async syncDirs(): Promise<void> {
    if (this.unsyncedDirs.size === 0) return;
    const dirs = [...this.unsyncedDirs];
    this.unsyncedDirs = new Set();
    await Promise.all(dirs.map((d) => fsyncDir(d)));
  }

  private async write(shaHex: string, data: Buffer): Promise<void> {
    const dir = join(this.root, shaHex.slice(0, 2));
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
      this.unsyncedDirs.add(this.root);
    }
    const final = join(dir, shaHex);
    const tmp = `${final}.tmp-${this.tmpTag}-${randomBytes(6).toString('hex')}`;
    const fh = await open(tmp, 'w');
    try {
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await fh.write(data, off, data.length - off);
        off += bytesWritten;
      }
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true }).catch(() => {});
      throw err;
    }
    await fh.close();
    await rename(tmp, final);
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
        if (name.includes('.tmp-') && !name.includes(`.tmp-${this.tmpTag}-`)) await rm(join(dir, name), { force: true });
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
