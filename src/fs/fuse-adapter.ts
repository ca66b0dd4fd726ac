/**
 * FuseAdapter: fuse-native operations over a directory of FileViews (src/fs/file-view.ts): the
 * whole-disk file `SNAPSHOT_ID.img`, each partition's `SNAPSHOT_ID-pN.img`, each a window over a
 * VolumeFile. It only translates; every byte comes from a view's VolumeFile. Given `file` and
 * `snapshotId` alone it serves the one whole-disk view.
 *
 * Contract:
 * - getattr: a file has its view's length, st_blocks = what the view holds in 512-byte units
 *   (the whole disk: allocated blocks × 1024, so `du` shows what the snapshot holds; a partition:
 *   its length), mode 0400 (0600 writable; group and others may read only with allow_other),
 *   owned by the mounting user. The directory is 0500 (0700 writable; 0555/0755 with allow_other).
 * - open for writing on a read-only mount, write, truncate: EROFS. On a writable mount truncate
 *   to the current size succeeds and any other size is EINVAL (a disk image does not resize).
 * - read → viewRead, write → viewWrite (the view's window of its VolumeFile), flush/fsync →
 *   the view's VolumeFile.flush (the journal is durable before the kernel hears back).
 * - Deadlines: read, write, flush and fsync are answered within `deadlineMs` (default 60 s,
 *   src/fs/op-deadline.ts), EIO when the VolumeFile has not finished by then; the op's buffer is
 *   never touched after its answer.
 * - Errors: IoError codes map to the Fuse errno constants; anything else is EIO and logged.
 *   No callback ever throws, and each is answered exactly once.
 * - `openHandles` and `inFlight` let the daemon see whether the kernel still uses the file.
 *
 * fuse-native is loaded lazily with createRequire (loadFuseNative), so a missing libfuse2 only
 * fails the commands that mount, with a message naming the package. `mountFuse` mounts with a
 * subclass that appends options fuse-native's whitelist lacks (src/fs/fuse-options.ts,
 * native/README.md) and resolves once the kernel sent INIT.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type FuseNative from 'fuse-native';
import { BLOCK_SIZE } from '../ebs/constants.js';
import { silentLogger, type Logger } from '../util/log.js';
import { isIoError, type IoErrorCode } from './io-error.js';
import { appendFuseOptions, extraFuseOptions, nativeFuseOptions, type FuseMountSettings } from './fuse-options.js';
import { DeadlineError, opDeadlineMs, runWithDeadline } from './op-deadline.js';
import type { VolumeFile } from './volume-file.js';
import { viewRead, viewWrite, wholeVolumeView, type FileView } from './file-view.js';

type FuseClass = typeof FuseNative;
type Ops = FuseNative.Operations;
type Stat = FuseNative.Stat;

const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_RDWR = 2;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/** Linux errno numbers (negated, as fuse-native wants them) for the IoError codes. */
const ERRNO: Record<IoErrorCode | 'ENOENT' | 'EISDIR' | 'ENOTDIR' | 'EBADF', number> = {
  EIO: -5,
  ENOENT: -2,
  EBADF: -9,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  EFBIG: -27,
  ENOSPC: -28,
  EROFS: -30,
};

export class FuseUnavailableError extends Error {
  override readonly name = 'FuseUnavailableError';
}

let cachedFuse: FuseClass | undefined;
/**
 * Every Fuse object ever mounted, kept for the life of the process: its `_thread` and `_threads`
 * Buffers hold libuv async handles that stay registered with the event loop (only unref'd), so
 * letting the garbage collector free them crashes the process later (seen: SIGSEGV).
 */
const keepAlive = new Set<FuseNative>();
const released = new WeakSet<FuseNative>();

/** require('fuse-native'), turning a dlopen failure into a message that names libfuse2. */
export function loadFuseNative(): FuseClass {
  if (cachedFuse) return cachedFuse;
  const require = createRequire(import.meta.url);
  try {
    cachedFuse = require('fuse-native') as FuseClass;
    return cachedFuse;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/libfuse|\.so/.test(msg)) {
      throw new FuseUnavailableError(`FUSE is not available: libfuse.so.2 cannot be loaded (install libfuse2: apt-get install libfuse2): ${firstLine(msg)}`);
    }
    throw new FuseUnavailableError(`FUSE is not available: the fuse-native module cannot be loaded: ${firstLine(msg)}`);
  }
}

/** Maps an error from the VolumeFile to a negative errno. */
export function errnoOf(err: unknown): number {
  if (isIoError(err)) return ERRNO[err.code] ?? ERRNO.EIO;
  return ERRNO.EIO;
}

export interface FuseAdapterOptions {
  /** The whole-disk volume; its view is the first file unless `views` are given. */
  file: VolumeFile;
  snapshotId: string;
  /** The directory's files, in listing order (names unique); default: the whole-disk view. */
  views?: FileView[];
  allowOther: boolean;
  uid: number;
  gid: number;
  logger?: Logger;
  /** Times shown for the directory and the file. */
  time?: Date;
  /** Data ops are answered within this (default: opDeadlineMs()). */
  deadlineMs?: number;
}

export class FuseAdapter {
  /** The first view's name (the whole disk). */
  readonly fileName: string;
  readonly filePath: string;
  readonly views: readonly FileView[];
  private readonly byPath: Map<string, FileView>;
  openHandles = 0;
  inFlight = 0;
  private nextFd = 1;
  private readonly opts: FuseAdapterOptions;
  private readonly logger: Logger;
  private readonly time: Date;
  private readonly deadlineMs: number;

  constructor(opts: FuseAdapterOptions) {
    this.deadlineMs = opts.deadlineMs ?? opDeadlineMs();
    this.opts = opts;
    this.logger = opts.logger ?? silentLogger;
    this.views = opts.views ?? [wholeVolumeView(opts.file, opts.snapshotId)];
    this.byPath = new Map(this.views.map((v) => [`/${v.name}`, v]));
    if (this.byPath.size !== this.views.length) throw new Error('FuseAdapter: view names must be unique');
    this.fileName = this.views[0]!.name;
    this.filePath = `/${this.fileName}`;
    this.time = opts.time ?? new Date();
  }

  get writable(): boolean {
    return this.views.some((v) => v.writable);
  }

  /** The view at `path` ('/NAME'), if any. */
  viewAt(path: string): FileView | undefined {
    return this.byPath.get(path);
  }

  fileStat(view: FileView = this.views[0]!): Stat {
    const { allowOther, uid, gid } = this.opts;
    const owner = view.writable ? 0o600 : 0o400;
    const others = allowOther ? 0o044 : 0;
    return {
      mode: S_IFREG | owner | others,
      uid,
      gid,
      size: view.length,
      nlink: 1,
      blksize: BLOCK_SIZE,
      blocks: Math.ceil(Math.min(view.allocatedBytes?.() ?? view.length, view.length) / 512),
      atime: this.time,
      mtime: this.time,
      ctime: this.time,
    };
  }

  dirStat(): Stat {
    const { allowOther, uid, gid } = this.opts;
    const owner = this.writable ? 0o700 : 0o500;
    const others = allowOther ? 0o055 : 0;
    return { mode: S_IFDIR | owner | others, uid, gid, size: 4096, nlink: 2, atime: this.time, mtime: this.time, ctime: this.time };
  }

  /** The fuse-native operations object. */
  ops(): Ops {
    const viewOf = (path: string) => this.byPath.get(path);
    const guard = <A extends unknown[]>(name: string, fn: (...args: A) => void) =>
      (...args: A): void => {
        try {
          fn(...args);
        } catch (err) {
          // A synchronous bug must not escape into fuse-native: answer EIO.
          this.logger.error({ op: name, err }, 'fuse op failed');
          const cb = args[args.length - 1];
          if (typeof cb === 'function') (cb as (e: number) => void)(ERRNO.EIO);
        }
      };
    const track = <T>(work: (signal: AbortSignal) => Promise<T>, onOk: (v: T) => void, onErr: (e: number) => void, op: string): void => {
      this.inFlight++;
      void runWithDeadline(this.deadlineMs, work, (outcome) => {
        if (outcome.ok) return onOk(outcome.value);
        const err = outcome.err;
        if (err instanceof DeadlineError) this.logger.warn({ op, deadlineMs: this.deadlineMs }, 'fuse op not finished by its deadline: answered EIO');
        else if (!isIoError(err) || err.code === 'EIO') this.logger.warn({ op, err: errMessage(err) }, 'fuse op failed');
        onErr(errnoOf(err));
      }).finally(() => this.inFlight--);
    };

    return {
      init: guard('init', (cb) => cb(0)),
      getattr: guard('getattr', (path, cb) => {
        if (path === '/') return cb(0, this.dirStat());
        const view = viewOf(path);
        if (view) return cb(0, this.fileStat(view));
        return cb(ERRNO.ENOENT);
      }),
      fgetattr: guard('fgetattr', (path, _fd, cb) => {
        if (path === '/') return cb(0, this.dirStat());
        const view = viewOf(path);
        if (view) return cb(0, this.fileStat(view));
        return cb(ERRNO.ENOENT);
      }),
      readdir: guard('readdir', (path, cb) => {
        if (path !== '/') return cb(viewOf(path) ? ERRNO.ENOTDIR : ERRNO.ENOENT);
        return cb(0, this.views.map((v) => v.name), this.views.map((v) => this.fileStat(v)));
      }),
      statfs: guard('statfs', (_path, cb) => {
        const volumes = new Set(this.views.map((v) => v.volume));
        const blocks = [...volumes].reduce((a, v) => a + Math.ceil(v.sizeBytes / BLOCK_SIZE), 0);
        const free = 0;
        cb(0, { bsize: BLOCK_SIZE, frsize: BLOCK_SIZE, blocks, bfree: free, bavail: free, files: this.views.length + 1, ffree: 0, favail: 0, namemax: 255 });
      }),
      open: guard('open', (path, flags, cb) => {
        if (path === '/') return cb(ERRNO.EISDIR);
        const view = viewOf(path);
        if (!view) return cb(ERRNO.ENOENT);
        const acc = flags & O_ACCMODE;
        if (!view.writable && (acc === O_WRONLY || acc === O_RDWR)) return cb(ERRNO.EROFS);
        this.openHandles++;
        return cb(0, this.nextFd++);
      }),
      release: guard('release', (_path, _fd, cb) => {
        this.openHandles = Math.max(0, this.openHandles - 1);
        cb(0);
      }),
      read: guard('read', (path, _fd, buf, len, pos, cb) => {
        const view = viewOf(path);
        if (!view) return cb(ERRNO.EBADF);
        track((signal) => viewRead(view, buf, len, pos, { signal }), (n) => cb(n), (e) => cb(e), 'read');
      }),
      write: guard('write', (path, _fd, buf, len, pos, cb) => {
        const view = viewOf(path);
        if (!view) return cb(ERRNO.EBADF);
        if (!view.writable) return cb(ERRNO.EROFS);
        track((signal) => viewWrite(view, buf, len, pos, { signal }), (n) => cb(n), (e) => cb(e), 'write');
      }),
      truncate: guard('truncate', (path, size, cb) => cb(this.truncateErrno(path, size))),
      ftruncate: guard('ftruncate', (path, _fd, size, cb) => cb(this.truncateErrno(path, size))),
      flush: guard('flush', (path, _fd, cb) => this.syncOp(path, cb, 'flush')),
      fsync: guard('fsync', (path, _datasync, _fd, cb) => this.syncOp(path, cb, 'fsync')),
    };
  }

  private truncateErrno(path: string, size: number): number {
    if (path === '/') return ERRNO.EISDIR;
    const view = this.byPath.get(path);
    if (!view) return ERRNO.ENOENT;
    if (!view.writable) return ERRNO.EROFS;
    return size === view.length ? 0 : ERRNO.EINVAL;
  }

  private syncOp(path: string, cb: (err: number) => void, op: string): void {
    const view = this.byPath.get(path);
    if (!view || !view.writable) return cb(0);
    this.inFlight++;
    void runWithDeadline(this.deadlineMs, (signal) => view.volume.flush({ signal }), (outcome) => {
      if (outcome.ok) return cb(0);
      this.logger.error({ op, err: errMessage(outcome.err) }, 'flush failed');
      cb(errnoOf(outcome.err));
    }).finally(() => this.inFlight--);
  }
}

export interface FuseMount {
  mountpoint: string;
  /** The fuse-native object (kept alive for as long as the mount lives). */
  fuse: FuseNative;
  /** The `-o...` string handed to libfuse. */
  optionString: string;
}

/** Mounts `adapter` at `mountpoint`; resolves once the kernel has sent INIT (the mount is live). */
export async function mountFuse(
  mountpoint: string,
  adapter: FuseAdapter,
  settings: FuseMountSettings,
  opts: { initTimeoutMs?: number } = {},
): Promise<FuseMount> {
  const Fuse = loadFuseNative();
  const extra = extraFuseOptions(settings);
  // The subclass trick (native/README.md): fuse-native builds its `-o` string from a whitelist;
  // we append what the whitelist lacks.
  class EbsmountFuse extends Fuse {
    protected override _fuseOptions(): string {
      return appendFuseOptions(super._fuseOptions(), extra);
    }
    get optionString(): string {
      return this._fuseOptions();
    }
  }
  const fuse = new EbsmountFuse(mountpoint, adapter.ops(), nativeFuseOptions(settings));
  keepAlive.add(fuse);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new FuseUnavailableError(`the kernel did not answer the FUSE mount of ${mountpoint} within ${(opts.initTimeoutMs ?? 20_000) / 1000} s`)),
      opts.initTimeoutMs ?? 20_000,
    );
    fuse.mount((err) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    });
  });
  return { mountpoint, fuse, optionString: fuse.optionString };
}

/**
 * After the kernel connection has ended (no /dev/fuse fd left), drops fuse-native's reference on
 * the event loop (its `fuse_native_unmount` binding, which `Fuse#unmount` only reaches after a
 * successful `fusermount -uz` — impossible once someone else unmounted). Without it the process
 * could never exit on its own.
 */
export function releaseFuse(m: FuseMount): void {
  try {
    const require = createRequire(import.meta.url);
    const pkgDir = dirname(require.resolve('fuse-native/package.json'));
    const binding = createRequire(require.resolve('fuse-native'))('node-gyp-build')(pkgDir) as {
      fuse_native_unmount(mnt: string, thread: Buffer): void;
    };
    const thread = (m.fuse as unknown as { _thread: Buffer | null })._thread;
    if (thread && !released.has(m.fuse)) binding.fuse_native_unmount(m.mountpoint, thread);
    released.add(m.fuse);
  } catch {
    // best effort: the daemon exits explicitly anyway
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
