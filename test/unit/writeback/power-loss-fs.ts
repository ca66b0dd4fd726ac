/**
 * A JournalFs double that models a power cut: file data is durable only once fdatasync/fsync
 * returned, a name (create, rename, unlink) only once its directory was fsynced. `crash(rand)`
 * returns the filesystem as it could be found after the power came back: durable content, plus
 * any subset of the 512-byte sectors of each write not yet synced (torn writes, in any order),
 * and for each directory either its durable or its latest entries.
 *
 * `cutAfter(n)`: the n-th operation from now and every later one fail with EIO (the power is
 * gone). `fault(fn)`: makes chosen operations fail (e.g. a rename), for fault-injection tests.
 * Memory: one Buffer per file for what the process sees, one for what is durable.
 */
import { dirname } from 'node:path';
import type { JournalFile, JournalFs, OpenMode } from '../../../src/writeback/journal-fs.js';

const SECTOR = 512;

type Pending = { kind: 'write'; pos: number; bytes: Buffer } | { kind: 'truncate'; length: number };

/** A growable byte array (capacity doubles: appending to a big file stays cheap). */
class Bytes {
  private buf: Buffer;
  length: number;
  constructor(from?: Bytes) {
    this.buf = from ? Buffer.from(from.buf.subarray(0, from.length)) : Buffer.alloc(0);
    this.length = from ? from.length : 0;
  }
  view(): Buffer {
    return this.buf.subarray(0, this.length);
  }
  resize(length: number): void {
    if (length > this.buf.length) {
      const next = Buffer.alloc(Math.max(length, this.buf.length * 2));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    } else if (length > this.length) {
      this.buf.fill(0, this.length, length);
    }
    this.length = length;
  }
  write(pos: number, bytes: Buffer): void {
    if (pos + bytes.length > this.length) this.resize(pos + bytes.length);
    bytes.copy(this.buf, pos);
  }
}

class Inode {
  current = new Bytes();
  durable = new Bytes();
  pending: Pending[] = [];

  write(pos: number, bytes: Buffer): void {
    this.current.write(pos, bytes);
    this.pending.push({ kind: 'write', pos, bytes: Buffer.from(bytes) });
  }

  truncate(length: number): void {
    this.current.resize(length);
    this.pending.push({ kind: 'truncate', length });
  }

  sync(): void {
    for (const op of this.pending) {
      if (op.kind === 'write') this.durable.write(op.pos, op.bytes);
      else this.durable.resize(op.length);
    }
    this.pending = [];
  }

  /** What a power cut leaves: durable data plus a random subset of the unsynced sectors. */
  survivor(rand: () => number): Inode {
    const data = new Bytes(this.durable);
    for (const op of this.pending) {
      if (op.kind === 'truncate') {
        if (rand() < 0.5) data.resize(op.length);
        continue;
      }
      for (let off = 0; off < op.bytes.length; off += SECTOR) {
        if (rand() < 0.5) data.write(op.pos + off, op.bytes.subarray(off, Math.min(op.bytes.length, off + SECTOR)));
      }
    }
    const n = new Inode();
    n.current = data;
    n.durable = new Bytes(data);
    return n;
  }
}

function errno(code: string, message: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

export class PowerLossFs implements JournalFs {
  private names = new Map<string, Inode>();
  private durableNames = new Map<string, Inode>();
  private ops = 0;
  private cut = Infinity;
  private faultFn: ((op: string, path: string) => Error | undefined) | undefined;

  /** Operations so far. */
  get opCount(): number {
    return this.ops;
  }

  get powerLost(): boolean {
    return this.ops >= this.cut;
  }

  cutAfter(n: number): void {
    this.cut = this.ops + n;
  }

  fault(fn: ((op: string, path: string) => Error | undefined) | undefined): void {
    this.faultFn = fn;
  }

  private step(op: string, path: string): void {
    this.ops++;
    if (this.ops >= this.cut) throw errno('EIO', `power lost (${op} ${path})`);
    const e = this.faultFn?.(op, path);
    if (e) throw e;
  }

  crash(rand: () => number): PowerLossFs {
    const fs = new PowerLossFs();
    const survivors = new Map<Inode, Inode>();
    const survivor = (i: Inode) => {
      let s = survivors.get(i);
      if (!s) survivors.set(i, (s = i.survivor(rand)));
      return s;
    };
    const dirs = new Set([...this.names.keys(), ...this.durableNames.keys()].map((p) => dirname(p)));
    for (const dir of dirs) {
      const source = rand() < 0.5 ? this.durableNames : this.names;
      for (const [p, i] of source) if (dirname(p) === dir) fs.names.set(p, survivor(i));
    }
    fs.durableNames = new Map(fs.names);
    return fs;
  }

  async open(path: string, mode: OpenMode): Promise<JournalFile> {
    this.step('open', path);
    let inode = this.names.get(path);
    if (mode === 'r' || mode === 'r+') {
      if (!inode) throw errno('ENOENT', path);
    } else if (!inode) {
      inode = new Inode();
      this.names.set(path, inode);
    } else {
      inode.truncate(0);
    }
    const node = inode;
    const step = (op: string) => this.step(op, path);
    let closed = false;
    const live = () => {
      if (closed) throw errno('EBADF', path);
    };
    return {
      async read(buf, offset, length, position) {
        step('read');
        live();
        const n = Math.max(0, Math.min(length, node.current.length - position));
        node.current.view().copy(buf, offset, position, position + n);
        return { bytesRead: n };
      },
      async write(buf, offset, length, position) {
        step('write');
        live();
        if (mode === 'r') throw errno('EBADF', path);
        node.write(position, buf.subarray(offset, offset + length));
        return { bytesWritten: length };
      },
      async datasync() {
        step('datasync');
        live();
        node.sync();
      },
      async sync() {
        step('sync');
        live();
        node.sync();
      },
      async truncate(length) {
        step('truncate');
        live();
        node.truncate(length);
      },
      async size() {
        step('size');
        live();
        return node.current.length;
      },
      async close() {
        step('close');
        closed = true;
      },
    };
  }

  async readText(path: string): Promise<string> {
    this.step('readText', path);
    const i = this.names.get(path);
    if (!i) throw errno('ENOENT', path);
    return i.current.view().toString('utf8');
  }

  async exists(path: string): Promise<boolean> {
    this.step('exists', path);
    return this.names.has(path);
  }

  async rename(from: string, to: string): Promise<void> {
    this.step('rename', to);
    const i = this.names.get(from);
    if (!i) throw errno('ENOENT', from);
    this.names.delete(from);
    this.names.set(to, i);
  }

  async unlink(path: string): Promise<void> {
    this.step('unlink', path);
    if (!this.names.delete(path)) throw errno('ENOENT', path);
  }

  async remove(path: string): Promise<void> {
    this.step('remove', path);
    for (const p of [...this.names.keys()]) if (p === path || p.startsWith(`${path}/`)) this.names.delete(p);
  }

  async mkdirp(path: string): Promise<void> {
    this.step('mkdirp', path);
  }

  async fsyncDir(dir: string): Promise<void> {
    this.step('fsyncDir', dir);
    for (const p of [...this.durableNames.keys()]) if (dirname(p) === dir && !this.names.has(p)) this.durableNames.delete(p);
    for (const [p, i] of this.names) if (dirname(p) === dir) this.durableNames.set(p, i);
  }

  async lock(): Promise<{ release(): Promise<void> }> {
    return { release: async () => {} };
  }

  /** The bytes of a file as the process sees them (tests). */
  bytes(path: string): Buffer | undefined {
    return this.names.get(path)?.current.view();
  }
}
