/**
 * Test helpers for real mounts: ebsmount mounts through the CLI, loop devices, filesystem mounts,
 * and a cleanup registry that undoes all of them (also after a failure) from `after()`.
 *
 * Contract:
 * - Everything made here registers its undo in `cleanup` (LIFO) before it returns: filesystem
 *   mounts are unmounted (lazily if busy), loop devices detached, ebsmount mounts ended with
 *   `ebsmount unmount`, then `umount -l`, then SIGKILL of a daemon that still runs, temp dirs
 *   removed (never while something is mounted below them). `await cleanupAll()` in `after()`.
 * - `mountSnapshot(endpoint, snapshotId, {args})` runs `ebsmount SNAP MNT --endpoint E ...args`
 *   on a fresh empty temp dir (XDG_STATE_HOME in a temp dir too, so logs and journals never land
 *   in the user's state dir), asserts it exited 0 with the mount live, and returns the
 *   mountpoint, the image path, the daemon pid (from `status --json`), `status()` and
 *   `unmount()`.
 * - `loopAttach(path, {readOnly, offset, sizeLimit})` → /dev/loopN (`losetup -f --show`);
 *   `mountDev(dev, dir, {type, options})`; `umountQuiet(dir)` never throws.
 * - Synchronous file I/O on a mount from the test process is fine: the FUSE server is another
 *   process (the daemon).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliResult } from './cli.js';
import { MountRegistry } from '../../src/mount/registry.js';
import { registryDir } from '../../src/mount/paths.js';

type Undo = () => Promise<unknown> | unknown;

export class Cleanup {
  private readonly undos: { name: string; fn: Undo }[] = [];

  add(name: string, fn: Undo): void {
    this.undos.push({ name, fn });
  }

  /** Runs every undo, newest first; failures are collected and reported, never stop the rest. */
  async run(): Promise<string[]> {
    const failures: string[] = [];
    while (this.undos.length > 0) {
      const { name, fn } = this.undos.pop()!;
      try {
        await fn();
      } catch (err) {
        failures.push(`${name}: ${(err as Error).message}`);
      }
    }
    if (failures.length) process.stderr.write(`cleanup: ${failures.join('; ')}\n`);
    return failures;
  }
}

export const cleanup = new Cleanup();

export function cleanupAll(): Promise<string[]> {
  return cleanup.run();
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; resolves with its exit code (never rejects for a non-zero exit). */
export function sh(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Mountpoints currently in this mount namespace (unescaped). */
export async function mountpoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
}

export async function isMounted(dir: string): Promise<boolean> {
  return (await mountpoints()).includes(dir);
}

/** The mountinfo line fields of `dir`, or undefined. */
export async function mountEntry(dir: string): Promise<{ fstype: string; source: string; mountOptions: string[]; superOptions: string[] } | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  let found;
  for (const line of text.split('\n').filter(Boolean)) {
    const f = line.split(' ');
    if (f[4] !== dir) continue;
    const sep = f.indexOf('-', 6);
    found = { fstype: f[sep + 1], source: f[sep + 2], mountOptions: f[5].split(','), superOptions: (f[sep + 3] ?? '').split(',') };
  }
  return found;
}

export async function umountQuiet(dir: string): Promise<void> {
  if (!(await isMounted(dir))) return;
  const r = await sh('umount', [dir]);
  if (r.code !== 0 && (await isMounted(dir))) await sh('umount', ['-l', dir]);
}

/** A fresh temp dir, removed at cleanup (after unmounting anything below it). */
export async function tempDir(prefix = 'ebsmount-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanup.add(`rm ${dir}`, async () => {
    for (const m of (await mountpoints()).filter((p) => p.startsWith(`${dir}/`)).reverse()) await umountQuiet(m);
    if ((await mountpoints()).some((p) => p.startsWith(`${dir}/`))) throw new Error(`still mounted below ${dir}; not removed`);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

export async function loopAttach(path: string, opts: { readOnly: boolean; offset?: number; sizeLimit?: number }): Promise<string> {
  const args = ['-f', '--show'];
  if (opts.readOnly) args.push('-r');
  if (opts.offset !== undefined) args.push('-o', String(opts.offset));
  if (opts.sizeLimit !== undefined) args.push('--sizelimit', String(opts.sizeLimit));
  const dev = (await must('losetup', [...args, path])).trim();
  cleanup.add(`losetup -d ${dev}`, () => loopDetach(dev));
  return dev;
}

export async function loopDetach(dev: string): Promise<void> {
  const r = await sh('losetup', ['-d', dev]);
  if (r.code !== 0 && !/No such device|not a loop|No such device or address/i.test(r.stderr)) {
    // a device still held is detached once its last user closes it (autoclear)
    await sh('losetup', ['--detach', dev]);
  }
}

export async function mountDev(dev: string, dir: string, opts: { type?: string; options?: string } | string = {}): Promise<void> {
  const o = typeof opts === 'string' ? { options: opts } : opts;
  const args = [...(o.type ? ['-t', o.type] : []), ...(o.options ? ['-o', o.options] : []), dev, dir];
  cleanup.add(`umount ${dir}`, () => umountQuiet(dir));
  await must('mount', args);
}

/** True when `pid` no longer runs (gone or a zombie). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Polls until `pid` is gone; true if it went within `timeoutMs`. */
export async function waitGone(pid: number, timeoutMs = 10_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (processGone(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return processGone(pid);
}

export interface StatusDoc {
  pid: number;
  snapshotId: string;
  mountpoint: string;
  volumeSizeGiB: number;
  allocatedBlocks: number;
  allocatedBlocksFinal: boolean;
  writable: boolean;
  stats: Record<string, number>;
  requests: { get: number; list: number; put: number };
  estimatedCostUsd: { total: number };
  [k: string]: unknown;
}

export interface MountedSnapshot {
  snapshotId: string;
  mountpoint: string;
  imagePath: string;
  pid: number;
  /** What the mount command printed. */
  result: CliResult;
  status(): Promise<StatusDoc>;
  /** `ebsmount unmount MNT ...args`; the daemon is gone when it resolves with code 0. */
  unmount(args?: string[]): Promise<CliResult>;
}

/** Registry-free status of one mount via the CLI. */
export async function statusOf(mountpoint: string): Promise<StatusDoc> {
  const r = await runCli(['status', mountpoint, '--json']);
  if (r.code !== 0) throw new Error(`ebsmount status ${mountpoint} failed (${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as StatusDoc;
}

export async function mountSnapshot(
  endpoint: string,
  snapshotId: string,
  opts: { args?: string[]; mountpoint?: string; env?: Record<string, string | undefined> } = {},
): Promise<MountedSnapshot> {
  const base = await tempDir('ebsmount-mnt-');
  const mountpoint = opts.mountpoint ?? join(base, 'mnt');
  if (!opts.mountpoint) await must('mkdir', [mountpoint]);
  // Logs and journals go to a temp state dir, not the user's ~/.local/state.
  const env = { XDG_STATE_HOME: join(base, 'state'), ...opts.env };
  let pid: number | undefined;
  cleanup.add(`ebsmount mount at ${mountpoint}`, async () => {
    if (await isMounted(mountpoint)) await runCli(['unmount', mountpoint, '--discard'], { timeoutMs: 120_000 });
    if (await isMounted(mountpoint)) await sh('umount', ['-l', mountpoint]);
    if (pid !== undefined && !(await waitGone(pid, 5_000))) process.kill(pid, 'SIGKILL');
  });
  const result = await runCli([snapshotId, mountpoint, '--endpoint', endpoint, ...(opts.args ?? [])], { env });
  if (result.code !== 0) throw new Error(`ebsmount ${snapshotId} ${mountpoint} failed (${result.code}): ${result.stderr.trim()}`);
  if (!(await isMounted(mountpoint))) throw new Error(`ebsmount ${snapshotId} ${mountpoint} exited 0 but nothing is mounted`);
  const status = await statusOf(mountpoint);
  pid = status.pid;
  return {
    snapshotId,
    mountpoint,
    imagePath: join(mountpoint, `${snapshotId}.img`),
    pid,
    result,
    status: () => statusOf(mountpoint),
    unmount: (args: string[] = []) => runCli(['unmount', mountpoint, ...args], { timeoutMs: 300_000 }),
  };
}

/** `ebsmount import IMAGE ...args` → the new snapshot id. */
export async function importImage(endpoint: string, image: string, args: string[] = []): Promise<string> {
  const r = await runCli(['import', image, '--endpoint', endpoint, ...args], { timeoutMs: 300_000 });
  const id = r.stdout.trim();
  if (r.code !== 0 || !/^snap-[0-9a-f]+$/.test(id)) throw new Error(`ebsmount import ${image} failed (${r.code}): ${r.stderr.trim()}`);
  return id;
}

/** Registry entries naming `mountpoint` (live or stale), in the registry dir the CLI uses. */
export async function registryEntriesFor(mountpoint: string): Promise<string[]> {
  return (await new MountRegistry(registryDir()).list()).filter((e) => e.mountpoint === mountpoint).map((e) => e.file);
}
