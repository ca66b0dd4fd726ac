/**
 * What the benchmark asks of the machine through /proc and /sys: dropping the page cache, a
 * process's resident memory and CPU time, which processes mention a path in their argv, which
 * mounts lie under a directory, and a description of the machine for the results.
 *
 * Parsing helpers (`parseVmRss`, `parseCpuTicks`, `mountsUnder`) are pure and exported for tests.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { run } from './exec.js';

/** Flushes dirty pages, then drops the page cache, dentries and inodes (needs root). */
export async function dropPageCache(): Promise<void> {
  await run('sync', [], { timeoutMs: 120_000 });
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

export function parseVmRss(status: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** Resident memory of `pid`, bytes; undefined when the process is gone. */
export function vmRssBytes(pid: number): number | undefined {
  try {
    return parseVmRss(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** utime + stime ticks from a /proc/PID/stat line (the command name may hold spaces and parens). */
export function parseCpuTicks(stat: string): number | undefined {
  const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after comm start at field 3 (state); utime is field 14, stime field 15.
  const utime = Number(afterComm[14 - 3]);
  const stime = Number(afterComm[15 - 3]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU time used so far by `pid` (user + system), seconds; undefined when gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const ticks = parseCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return ticks === undefined ? undefined : ticks / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** CPU seconds of this process's waited-for children (cutime + cstime of /proc/self/stat). */
export function childrenCpuSeconds(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** True when `arg` names `path` or something under it (also as `if=PATH/x`, `--data=PATH`). */
export function argMentionsPath(arg: string, path: string): boolean {
  const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[=,:])${escaped}(/|$)`).test(arg);
}

/** Pids (other than ours) whose command line names `path` or something under it. */
export function pidsWithArg(path: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => argMentionsPath(a, path))) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Mount points from /proc/self/mountinfo text that lie at or under `dir`, deepest first. */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const points = mountinfo
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4]!.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === dir || p.startsWith(prefix));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

export function isMountpoint(path: string): boolean {
  return mountsUnder(readFileSync('/proc/self/mountinfo', 'utf8'), path).includes(path);
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  node: string;
  date: string;
  hostname: string;
  /** 1-minute load average when the run started (the machine may be shared). */
  loadAverage: number;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    date: new Date().toISOString(),
    hostname: os.hostname(),
    loadAverage: os.loadavg()[0]!,
  };
}

/** Samples a process's VmRSS every `intervalMs` until stopped; reports the peak and the last. */
export class RssSampler {
  private peak = 0;
  private last = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number, intervalMs = 200) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const rss = vmRssBytes(this.pid);
    if (rss === undefined) return;
    this.last = rss;
    if (rss > this.peak) this.peak = rss;
  }

  stop(): { peakBytes: number; lastBytes: number } {
    clearInterval(this.timer);
    this.sample();
    return { peakBytes: this.peak, lastBytes: this.last };
  }
}
