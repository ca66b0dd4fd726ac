#!/usr/bin/env node
/**
 * memfuse: the ceiling of the FUSE path itself. A fuse-native filesystem holding one read-only
 * file, /mem.img, served from a Buffer in memory (a read op is one copy), so dd through it measures
 * kernel ↔ libfuse ↔ N-API ↔ JS without any storage behind.
 *
 *   node dist/scripts/bench/memfuse.js MOUNTPOINT SIZE_BYTES [--options opt1,opt2] [--latency-ms N]
 *
 * --options appends raw FUSE mount options (like ebsmount's adapter does, e.g. max_readahead=...)
 * so the comparison uses the same mount settings. Prints `ready <path of the file>` on stdout once
 * mounted; unmounts and exits on SIGTERM/SIGINT. Buffer sizes up to buffer.constants.MAX_LENGTH
 * (4 GiB on 64-bit Node 20) work; the content is a repeated 1 MiB random pattern.
 * --latency-ms delays every read (to check what queue depth the FUSE path itself passes through).
 */
import { createRequire } from 'node:module';
import { randomFillSync } from 'node:crypto';
import { constants as bufferConstants } from 'node:buffer';

const require = createRequire(import.meta.url);
// fuse-native ships no types; this program uses five ops of its documented API.
type FuseClass = (new (mnt: string, ops: object, opts: object) => any) & { ENOENT: number };
const Fuse = require('fuse-native') as FuseClass;

const FILE_NAME = 'mem.img';
const PATTERN_BYTES = 1024 * 1024;

function usage(msg: string): never {
  process.stderr.write(`memfuse: ${msg}\nusage: memfuse MOUNTPOINT SIZE_BYTES [--options opt1,opt2] [--latency-ms N]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): { mnt: string; size: number; extraOptions: string[]; latencyMs: number } {
  const positional: string[] = [];
  let extraOptions: string[] = [];
  let latencyMs = 0;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--options') extraOptions = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (argv[i] === '--latency-ms') latencyMs = Number(argv[++i]);
    else positional.push(argv[i]!);
  }
  if (!(latencyMs >= 0)) usage('bad --latency-ms');
  const [mnt, sizeText] = positional;
  if (!mnt || !sizeText) usage('give a mountpoint and a size');
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size) || size <= 0 || size > bufferConstants.MAX_LENGTH) usage(`bad size ${sizeText}`);
  return { mnt, size, extraOptions, latencyMs };
}

function fillWithPattern(buf: Buffer): void {
  const pattern = randomFillSync(Buffer.allocUnsafe(Math.min(PATTERN_BYTES, buf.length)));
  for (let off = 0; off < buf.length; off += pattern.length) pattern.copy(buf, off);
}

const { mnt, size, extraOptions, latencyMs } = parseArgs(process.argv.slice(2));
const data = Buffer.allocUnsafe(size);
fillWithPattern(data);

const now = new Date();
const ops = {
  readdir(path: string, cb: (err: number, names?: string[]) => void) {
    if (path === '/') return cb(0, [FILE_NAME]);
    return cb(Fuse.ENOENT);
  },
  getattr(path: string, cb: (err: number, stat?: object) => void) {
    if (path === '/') return cb(0, { mtime: now, atime: now, ctime: now, size: 4096, mode: 0o40755, uid: 0, gid: 0, nlink: 2 });
    if (path === `/${FILE_NAME}`) return cb(0, { mtime: now, atime: now, ctime: now, size, mode: 0o100444, uid: 0, gid: 0, nlink: 1 });
    return cb(Fuse.ENOENT);
  },
  open(path: string, _flags: number, cb: (err: number, fd?: number) => void) {
    if (path !== `/${FILE_NAME}`) return cb(Fuse.ENOENT);
    return cb(0, 42);
  },
  release(_path: string, _fd: number, cb: (err: number) => void) {
    cb(0);
  },
  read(_path: string, _fd: number, buf: Buffer, len: number, pos: number, cb: (bytes: number) => void) {
    if (pos >= size) return cb(0);
    const end = Math.min(size, pos + len);
    if (latencyMs > 0) {
      setTimeout(() => cb(data.copy(buf, 0, pos, end)), latencyMs);
      return;
    }
    return cb(data.copy(buf, 0, pos, end));
  },
};

class TunedFuse extends Fuse {
  _fuseOptions(): string {
    const base: string = super._fuseOptions();
    if (extraOptions.length === 0) return base;
    return base ? `${base},${extraOptions.join(',')}` : `-o${extraOptions.join(',')}`;
  }
}

const fuse = new TunedFuse(mnt, ops, { force: true, fsname: 'memfuse' });
fuse.mount((err: Error | null) => {
  if (err) {
    process.stderr.write(`memfuse: mount failed: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`ready ${mnt}/${FILE_NAME}\n`);
});

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  fuse.unmount((err: Error | null) => {
    if (err) process.stderr.write(`memfuse: unmount failed: ${err.message}\n`);
    process.exit(err ? 1 : 0);
  });
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
