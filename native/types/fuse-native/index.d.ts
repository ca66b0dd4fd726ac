/**
 * Type declarations for fuse-native 2.2.6 (the package ships none). They describe what
 * node_modules/fuse-native/index.js really does, including the protected `_fuseOptions()` that
 * src/fs/fuse-adapter.ts overrides (see native/README.md, "the subclass trick").
 *
 * Callback convention: the first argument is 0 for success or a negative errno (Fuse.EIO ...).
 * `read`/`write` answer with the byte count (>= 0) or a negative errno.
 */
declare module 'fuse-native' {
  namespace Fuse {
    interface Stat {
      mode: number;
      uid?: number;
      gid?: number;
      size?: number;
      dev?: number;
      nlink?: number;
      ino?: number;
      rdev?: number;
      blksize?: number;
      /** 512-byte units */
      blocks?: number;
      atime?: Date | number;
      mtime?: Date | number;
      ctime?: Date | number;
    }

    interface Statfs {
      bsize?: number;
      frsize?: number;
      blocks?: number;
      bfree?: number;
      bavail?: number;
      files?: number;
      ffree?: number;
      favail?: number;
      fsid?: number;
      flag?: number;
      namemax?: number;
    }

    type Done = (err: number) => void;

    interface Operations {
      init?(cb: Done): void;
      error?(cb: Done): void;
      access?(path: string, mode: number, cb: Done): void;
      statfs?(path: string, cb: (err: number, statfs?: Statfs) => void): void;
      getattr?(path: string, cb: (err: number, stat?: Stat) => void): void;
      fgetattr?(path: string, fd: number, cb: (err: number, stat?: Stat) => void): void;
      flush?(path: string, fd: number, cb: Done): void;
      fsync?(path: string, datasync: number | boolean, fd: number, cb: Done): void;
      fsyncdir?(path: string, datasync: number | boolean, fd: number, cb: Done): void;
      readdir?(path: string, cb: (err: number, names?: string[], stats?: Stat[]) => void): void;
      truncate?(path: string, size: number, cb: Done): void;
      ftruncate?(path: string, fd: number, size: number, cb: Done): void;
      utimens?(path: string, atime: number, mtime: number, cb: Done): void;
      readlink?(path: string, cb: (err: number, linkname?: string) => void): void;
      chown?(path: string, uid: number, gid: number, cb: Done): void;
      chmod?(path: string, mode: number, cb: Done): void;
      mknod?(path: string, mode: number, dev: number, cb: Done): void;
      setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Done): void;
      getxattr?(path: string, name: string, position: number, cb: (err: number, value?: Buffer | null) => void): void;
      listxattr?(path: string, cb: (err: number, list?: string[]) => void): void;
      removexattr?(path: string, name: string, cb: Done): void;
      open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
      opendir?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
      read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
      write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
      release?(path: string, fd: number, cb: Done): void;
      releasedir?(path: string, fd: number, cb: Done): void;
      create?(path: string, mode: number, cb: (err: number, fd?: number) => void): void;
      unlink?(path: string, cb: Done): void;
      rename?(src: string, dest: string, cb: Done): void;
      link?(src: string, dest: string, cb: Done): void;
      symlink?(src: string, dest: string, cb: Done): void;
      mkdir?(path: string, mode: number, cb: Done): void;
      rmdir?(path: string, cb: Done): void;
    }

    interface Options {
      /** ms per op before the caller gets ETIMEDOUT; false disables; per-op object allowed. Default 15000. */
      timeout?: number | false | ({ default?: number } & Partial<Record<keyof Operations, number | false>>);
      force?: boolean;
      mkdir?: boolean;
      debug?: boolean;
      allowOther?: boolean;
      allowRoot?: boolean;
      autoUnmount?: boolean;
      defaultPermissions?: boolean;
      blkdev?: boolean;
      blksize?: number;
      maxRead?: number;
      fd?: number;
      userId?: number;
      fsname?: string;
      subtype?: string;
      kernelCache?: boolean;
      autoCache?: boolean;
      umask?: number;
      uid?: number;
      gid?: number;
      entryTimeout?: number;
      attrTimeout?: number;
      acAttrTimeout?: number;
      noforget?: boolean;
      remember?: number;
      modules?: string;
      displayFolder?: boolean;
      name?: string;
    }
  }

  class Fuse {
    constructor(mnt: string, ops: Fuse.Operations, opts?: Fuse.Options);
    readonly mnt: string;
    readonly opts: Fuse.Options;
    readonly ops: Fuse.Operations;
    /**
     * Builds the single `-oa,b,c` argument handed to fuse_mount/fuse_new (or '' for none) from
     * `opts`. Not public API, but stable in 2.2.6: subclasses may append options it does not
     * whitelist (big_writes, max_write=...).
     */
    protected _fuseOptions(): string;
    /** Mounts; the callback runs when the kernel sent INIT (the mount is live). */
    mount(cb: (err: Error | null) => void): void;
    /** `fusermount -uz` (lazy), then releases the native handle. */
    unmount(cb: (err: (Error & { unmountFailure?: boolean }) | null) => void): void;
    errno(code: string): number;

    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static isConfigured(cb: (err: Error | null, configured: boolean) => void): void;

    static readonly EPERM: number;
    static readonly ENOENT: number;
    static readonly EINTR: number;
    static readonly EIO: number;
    static readonly ENXIO: number;
    static readonly EBADF: number;
    static readonly EAGAIN: number;
    static readonly ENOMEM: number;
    static readonly EACCES: number;
    static readonly EBUSY: number;
    static readonly EEXIST: number;
    static readonly ENOTDIR: number;
    static readonly EISDIR: number;
    static readonly EINVAL: number;
    static readonly EFBIG: number;
    static readonly ENOSPC: number;
    static readonly EROFS: number;
    static readonly ENOSYS: number;
    static readonly ENOTEMPTY: number;
    static readonly ENODATA: number;
    static readonly EOPNOTSUPP: number;
    static readonly ETIMEDOUT: number;
    static readonly ENOTCONN: number;
    static readonly [errno: string]: unknown;
  }

  export = Fuse;
}
