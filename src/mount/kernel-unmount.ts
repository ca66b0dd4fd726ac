/**
 * Asking the kernel to unmount, and telling when it is done with us.
 *
 * - `unmountPath(mnt, {lazy})`: root runs `umount [-l] MNT`, others `fusermount -u [-z] MNT`
 *   (async execFile: a FUSE daemon must never block its own event loop while the kernel may call
 *   into it). Resolves {ok} or {ok:false, busy, message}; never throws.
 * - `fuseDeviceFds()`: how many of this process's fds are /dev/fuse. libfuse closes its fd when
 *   the kernel connection ends (after the unmount, once the last open file is released — a lazy
 *   unmount of a busy mount ends later), so 0 means no op will ever arrive again: only then may a
 *   writable mount commit. `waitForFuseRelease` polls it.
 */
import { execFile } from 'node:child_process';
import { readdir, readlink } from 'node:fs/promises';

export interface UnmountResult {
  ok: boolean;
  busy: boolean;
  message: string;
}

export function unmountPath(mountpoint: string, opts: { lazy?: boolean; uid?: number } = {}): Promise<UnmountResult> {
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  const [cmd, args] = uid === 0
    ? ['umount', [...(opts.lazy ? ['-l'] : []), mountpoint]]
    : ['fusermount', ['-u', ...(opts.lazy ? ['-z'] : []), mountpoint]];
  return new Promise((resolve) => {
    execFile(cmd, args as string[], { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve({ ok: true, busy: false, message: '' });
      const message = (String(stderr).trim().split('\n')[0] || err.message).trim();
      resolve({ ok: false, busy: /busy/i.test(message), message: `${cmd} ${(args as string[]).join(' ')}: ${message}` });
    });
  });
}

export async function fuseDeviceFds(pid: number | 'self' = 'self'): Promise<number> {
  const dir = `/proc/${pid}/fd`;
  let n = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    try {
      if ((await readlink(`${dir}/${name}`)) === '/dev/fuse') n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** Resolves once no /dev/fuse fd is left (polling every `intervalMs`); `onWait` every ~5 s. */
export async function waitForFuseRelease(opts: { intervalMs?: number; onWait?: (waitedMs: number) => void; signal?: AbortSignal } = {}): Promise<void> {
  const interval = opts.intervalMs ?? 100;
  const started = Date.now();
  let lastNote = started;
  while ((await fuseDeviceFds()) > 0) {
    if (opts.signal?.aborted) return;
    if (Date.now() - lastNote >= 5_000) {
      lastNote = Date.now();
      opts.onWait?.(lastNote - started);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
