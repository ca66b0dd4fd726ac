/**
 * Helpers of the writable-mount end-to-end tests: mounts made with the real CLI, loop devices,
 * filesystems, the daemon's pid, and what the server holds — with a cleanup stack that undoes
 * everything (also after a failure), so no mount, loop device or process is left behind.
 *
 * Every CLI call runs with a private XDG_STATE_HOME (journals, logs) and EBSMOUNT_RUN_DIR
 * (mount registry), set on process.env by `isolateState()` so the daemons inherit them too.
 */
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliResult } from '../../helpers/cli.js';
import { run } from '../../helpers/images.js';
import { ebsClient, listAllChanged } from '../../helpers/server.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';

export class Cleanup {
  private readonly steps: { what: string; fn: () => Promise<unknown> }[] = [];

  add(what: string, fn: () => Promise<unknown>): void {
    this.steps.push({ what, fn });
  }

  /** Runs every step, newest first; failures are logged, never thrown. */
  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        process.stderr.write(`cleanup (${step.what}): ${(err as Error).message}\n`);
      }
    }
  }
}

export async function tempDir(cleanup: Cleanup, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanup.add(`rm ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Private state and registry dirs for this test file's CLI calls and daemons. */
export async function isolateState(cleanup: Cleanup): Promise<{ stateHome: string; journalRoot: string }> {
  const stateHome = await tempDir(cleanup, 'ebsmount-wb-state-');
  const runDir = join(stateHome, 'run');
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  process.env.XDG_STATE_HOME = stateHome;
  process.env.EBSMOUNT_RUN_DIR = runDir;
  return { stateHome, journalRoot: join(stateHome, 'ebsmount', 'journals') };
}

export async function isMounted(dir: string): Promise<boolean> {
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  return table.split('\n').some((line) => line.split(' ')[4] === dir);
}

export async function umountQuiet(dir: string): Promise<void> {
  for (let i = 0; i < 3 && (await isMounted(dir)); i++) {
    await run('umount', [dir]).catch(() => run('umount', ['-l', dir]).catch(() => undefined));
  }
}

export interface CliMount {
  mountpoint: string;
  imagePath: string;
  result: CliResult;
}

/** `ebsmount SNAP MNT --endpoint EP ...args`; cleanup discards and unmounts whatever is left. */
export async function mountCli(cleanup: Cleanup, endpoint: string, snapshotId: string, args: string[] = []): Promise<CliMount> {
  const mountpoint = await tempDir(cleanup, 'ebsmount-wb-mnt-');
  cleanup.add(`unmount ${mountpoint}`, async () => {
    if (!(await isMounted(mountpoint))) return;
    await runCli(['unmount', mountpoint, '--discard'], { timeoutMs: 60_000 });
    await umountQuiet(mountpoint);
  });
  const result = await runCli([snapshotId, mountpoint, '--endpoint', endpoint, ...args], { timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`mount failed (${result.code}): ${result.stderr}`);
  return { mountpoint, imagePath: join(mountpoint, `${snapshotId}.img`), result };
}

export async function loopAttach(cleanup: Cleanup, path: string, readOnly: boolean): Promise<string> {
  const { stdout } = await run('losetup', ['-f', '--show', ...(readOnly ? ['-r'] : []), path]);
  const dev = stdout.trim();
  cleanup.add(`losetup -d ${dev}`, () => loopDetach(dev));
  return dev;
}

export async function loopDetach(dev: string): Promise<void> {
  const { stdout } = await run('losetup', ['-a']).catch(() => ({ stdout: '' }));
  if (!stdout.split('\n').some((l) => l.startsWith(`${dev}:`))) return;
  await run('losetup', ['-d', dev]);
}

export async function mountFs(cleanup: Cleanup, dev: string, options: string, fstype = 'ext4'): Promise<string> {
  const dir = await tempDir(cleanup, 'ebsmount-wb-fs-');
  cleanup.add(`umount ${dir}`, () => umountQuiet(dir));
  await run('mount', ['-t', fstype, '-o', options, dev, dir]);
  return dir;
}

/** pid of the daemon serving `mountpoint` (from `ebsmount status --json`). */
export async function daemonPid(mountpoint: string): Promise<number> {
  const r = await runCli(['status', mountpoint, '--json']);
  if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
  // One object when a mountpoint is given (an array in older builds: accept both).
  const doc = JSON.parse(r.stdout) as { pid: number; mountpoint: string } | { pid: number; mountpoint: string }[];
  const list = Array.isArray(doc) ? doc : [doc];
  const entry = list.find((e) => e.mountpoint === mountpoint) ?? list[0];
  if (!entry) throw new Error(`no daemon for ${mountpoint}`);
  return entry.pid;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** SIGKILL and wait until the process is gone. */
export async function kill9(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitFor(`pid ${pid} to exit`, async () => !processAlive(pid) || isZombie(pid), 15_000);
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Snapshots the server started with ParentSnapshotId = parentId (from its metadata log). */
export async function childrenOf(dataDir: string, parentId: string): Promise<string[]> {
  const text = await readFile(join(dataDir, 'metadata.log'), 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const json = line.slice(line.indexOf(' ') + 1);
    if (!json.startsWith('{')) continue;
    try {
      const r = JSON.parse(json) as { t: string; id: string; parent?: string };
      if (r.t === 'start' && r.parent === parentId) out.push(r.id);
    } catch {
      /* a torn line */
    }
  }
  return out;
}

/** ListChangedBlocks(first, second), as sorted block indexes. */
export async function changedBlocks(endpoint: string, first: string, second: string): Promise<number[]> {
  const client = ebsClient(endpoint);
  try {
    const blocks = await listAllChanged(client, first, second);
    return blocks.map((b) => b.BlockIndex!).sort((a, b) => a - b);
  } finally {
    client.destroy();
  }
}

/** Indexes of the 512 KiB blocks in which two files of the same size differ (first `limit` bytes). */
export async function differingBlocks(a: string, b: string, limit: number): Promise<number[]> {
  const fa = await open(a, 'r');
  const fb = await open(b, 'r');
  const ba = Buffer.alloc(BLOCK_SIZE);
  const bb = Buffer.alloc(BLOCK_SIZE);
  const out: number[] = [];
  try {
    for (let i = 0; i * BLOCK_SIZE < limit; i++) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, BLOCK_SIZE, i * BLOCK_SIZE), fb.read(bb, 0, BLOCK_SIZE, i * BLOCK_SIZE)]);
      if (ra.bytesRead !== rb.bytesRead || !ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) out.push(i);
    }
  } finally {
    await fa.close();
    await fb.close();
  }
  return out;
}

export const SNAP_RE = /^snap-[0-9a-f]{17}$/;

/** The one snapshot id `ebsmount unmount` / `commit` printed on stdout. */
export function printedId(r: CliResult): string {
  const id = r.stdout.trim();
  if (!SNAP_RE.test(id)) throw new Error(`expected a snapshot id on stdout, got ${JSON.stringify(r.stdout)} (stderr: ${r.stderr})`);
  return id;
}
