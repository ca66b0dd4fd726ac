/**
 * The system commands browse drives, each a small async wrapper that never blocks the event
 * loop and never throws for a non-zero exit (callers decide): losetup, mount, ntfs-3g, umount,
 * and what the machine supports (/proc/filesystems, ntfs-3g on PATH), and which loop devices are
 * backed by files under a directory (each loop device's backing_file in /sys/block).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { accessSync, constants } from 'node:fs';

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cmd(command: string, args: string[], timeoutMs = 120_000): Promise<CmdResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && code === 127 ? err.message : '') });
    });
  });
}

export function firstLine(s: string): string {
  return s.trim().split('\n')[0]?.trim() ?? '';
}

export async function kernelFilesystems(): Promise<Set<string>> {
  const text = await readFile('/proc/filesystems', 'utf8').catch(() => '');
  return new Set(text.split('\n').map((l) => l.trim().split(/\s+/).pop()!).filter(Boolean));
}

export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  for (const dir of (env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

/** Attaches `file` to a free loop device; resolves to /dev/loopN or throws with losetup's words. */
export async function loopAttach(file: string, readOnly: boolean): Promise<string> {
  const r = await cmd('losetup', ['-f', '--show', ...(readOnly ? ['-r'] : []), file]);
  if (r.code !== 0) throw new Error(`losetup ${file}: ${firstLine(r.stderr) || `exit ${r.code}`}`);
  return r.stdout.trim();
}

export async function loopDetach(dev: string): Promise<CmdResult> {
  return cmd('losetup', ['-d', dev]);
}

/** Loop devices whose backing file lies under `dir` (also when that file is on a dead mount). */
export async function loopsBackedUnder(dir: string): Promise<string[]> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const out: string[] = [];
  for (const name of await readdir('/sys/block').catch(() => [] as string[])) {
    if (!name.startsWith('loop')) continue;
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '');
    if (backing.trim().startsWith(prefix)) out.push(`/dev/${name}`);
  }
  return out;
}

/** Mounts `dev` at `dir`: the kernel driver, or ntfs-3g. */
export async function mountDevice(helper: 'kernel' | 'ntfs-3g', type: string, options: string[], dev: string, dir: string): Promise<CmdResult> {
  if (helper === 'ntfs-3g') return cmd('ntfs-3g', ['-o', options.join(','), dev, dir]);
  return cmd('mount', ['-t', type, '-o', options.join(','), dev, dir]);
}
