/**
 * The benchmark drives ebsmount only through its command line, as users do:
 * `import`, `[mount]`, `unmount`, `status --json` (dist/src/cli/main.js under this Node).
 *
 * Contract:
 * - Every mount registers its undo with the Cleanup (ebsmount unmount, then umount -l and SIGKILL
 *   of processes still naming the mountpoint) before `mount()` returns, so a failing benchmark
 *   never leaves a mount behind.
 * - `mount()` reports the wall time of the mount command (it returns once mounted) and finds the
 *   daemon's pid: the `pid` field of `status --json` if there is one, else the node process whose
 *   argv names the mountpoint.
 * - Credentials handed to the children are dummies for the local server; endpoint via --endpoint.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { run, type RunResult } from './exec.js';
import type { Cleanup } from './cleanup.js';
import { isMountpoint, pidsWithArg } from './system.js';
import { MIB } from './settings.js';

export interface MountOptions {
  cacheBytes: number;
  readAheadBytes: number;
  maxConcurrency: number;
  requestRate: number;
  writable?: boolean;
  /** Extra environment for the daemon. */
  env?: NodeJS.ProcessEnv;
  /**
   * Node flags for the mount command, e.g. --cpu-prof (Node refuses it in NODE_OPTIONS; the
   * daemon is spawned with the command's execArgv, so it inherits them).
   */
  nodeArgs?: string[];
  /** More mount options (e.g. --disk-cache DIR). */
  extraArgs?: string[];
}

export interface Mounted {
  snapshotId: string;
  mountpoint: string;
  /** The image file inside the mount. */
  file: string;
  mountMs: number;
  daemonPid: number | undefined;
  /** Unmounts now (as `ebsmount unmount`); resolves with that command's result. */
  unmount(): Promise<RunResult>;
}

const SNAPSHOT_RE = /\bsnap-[0-9a-f]{8,17}\b/;

export function mib(bytes: number): string {
  return `${Math.round(bytes / MIB)}MiB`;
}

export class EbsmountCli {
  readonly mainJs: string;

  constructor(
    repoRoot: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly cleanup: Cleanup,
  ) {
    this.mainJs = join(repoRoot, 'dist/src/cli/main.js');
  }

  childEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    return { ...this.env, ...extra };
  }

  cli(args: string[], opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; allowFail?: boolean; nodeArgs?: string[] }): Promise<RunResult> {
    return run(process.execPath, [...(opts.nodeArgs ?? []), this.mainJs, ...args], { timeoutMs: opts.timeoutMs, env: this.childEnv(opts.env), allowFail: opts.allowFail });
  }

  /** `ebsmount import IMAGE`: returns the new snapshot id. */
  async importImage(image: string, endpoint: string, timeoutMs: number): Promise<{ snapshotId: string; ms: number }> {
    const r = await this.cli(['import', image, '--endpoint', endpoint], { timeoutMs });
    const id = r.stdout.match(SNAPSHOT_RE)?.[0];
    if (!id) throw new Error(`ebsmount import printed no snapshot id: ${r.stdout.trim().slice(-200)}`);
    return { snapshotId: id, ms: r.ms };
  }

  async mount(snapshotId: string, mountpoint: string, endpoint: string, opts: MountOptions, timeoutMs = 120_000): Promise<Mounted> {
    const args = [
      snapshotId, mountpoint, '--endpoint', endpoint,
      '--cache-size', mib(opts.cacheBytes), '--read-ahead', mib(opts.readAheadBytes),
      '--max-concurrency', String(opts.maxConcurrency), '--request-rate', String(opts.requestRate),
    ];
    if (opts.writable) args.push('--writable');
    if (opts.extraArgs) args.push(...opts.extraArgs);
    const forceUnmount = this.cleanup.add(`mount ${mountpoint}`, () => this.forceUnmount(mountpoint));
    const r = await this.cli(args, { timeoutMs, env: opts.env, nodeArgs: opts.nodeArgs });
    if (!isMountpoint(mountpoint)) throw new Error(`ebsmount ${snapshotId} ${mountpoint} returned but nothing is mounted there`);
    const daemonPid = await this.daemonPid(mountpoint);
    this.cleanup.trackPid(daemonPid);
    let unmounted: Promise<RunResult> | undefined;
    return {
      snapshotId,
      mountpoint,
      file: join(mountpoint, `${snapshotId}.img`),
      mountMs: r.ms,
      daemonPid,
      unmount: () => {
        unmounted ??= (async () => {
          const res = await this.cli(['unmount', mountpoint], { timeoutMs: 900_000 });
          await forceUnmount(); // no-op when already gone; stops a daemon that lingers
          return res;
        })();
        return unmounted;
      },
    };
  }

  async status(mountpoint: string): Promise<unknown> {
    const r = await this.cli(['status', mountpoint, '--json'], { timeoutMs: 30_000 });
    return JSON.parse(r.stdout);
  }

  private async daemonPid(mountpoint: string): Promise<number | undefined> {
    try {
      const doc = await this.status(mountpoint);
      const pid = (doc as { pid?: unknown }).pid;
      if (typeof pid === 'number') return pid;
    } catch {
      // fall back to the process table
    }
    return pidsWithArg(mountpoint).find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]!.includes('node');
      } catch {
        return false;
      }
    });
  }

  /** Whatever it takes to leave no mount and no daemon behind. */
  private async forceUnmount(mountpoint: string): Promise<void> {
    if (isMountpoint(mountpoint)) await this.cli(['unmount', mountpoint], { timeoutMs: 300_000, allowFail: true });
    if (isMountpoint(mountpoint)) await run('umount', ['-l', mountpoint], { timeoutMs: 30_000, allowFail: true });
    const deadline = Date.now() + 10_000;
    let pids = pidsWithArg(mountpoint);
    while (pids.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      pids = pidsWithArg(mountpoint);
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
