/**
 * Child processes for the benchmark, never blocking the event loop (RSS is sampled while they run,
 * and a FUSE mount may be served by a process that needs us to stay responsive).
 *
 * - `run` waits for a command, bounded by a timeout (SIGKILL of that child only), and throws an
 *   Error quoting the command and the tail of its stderr when it fails (unless `allowFail`).
 * - `startBackground` spawns a long-lived child whose stdout is scanned line by line
 *   (`waitForLine`) and whose stderr goes to a log file; `stopProcess` ends it (SIGTERM, then
 *   SIGKILL after a grace period).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time, ms. */
  ms: number;
}

export interface RunOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  allowFail?: boolean;
  /** Called with the child's pid right after it starts. */
  onSpawn?: (pid: number) => void;
}

export function describeCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

export function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) opts.onSpawn?.(child.pid);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${describeCommand(cmd, args)}: ${err.message}`));
    });
    // A command that starts a daemon may leave it holding our pipes: settle on 'exit' too, after
    // giving 'close' a moment to deliver the rest of the output.
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      const result: RunResult = { code, signal, stdout, stderr, ms: performance.now() - started };
      if (timedOut) {
        reject(new Error(`${describeCommand(cmd, args)} timed out after ${opts.timeoutMs} ms\n${tail(stderr)}`));
      } else if (code !== 0 && !opts.allowFail) {
        reject(new Error(`${describeCommand(cmd, args)} exited with ${code ?? signal}\n${tail(stderr || stdout)}`));
      } else {
        resolve(result);
      }
    };
    child.on('close', finish);
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 500));
  });
}

export interface BackgroundProcess {
  child: ChildProcess;
  /** Resolves with the first stdout line matching `re`; rejects on exit or timeout. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string>;
  exited: Promise<number | null>;
}

export function startBackground(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; logFile: string }): BackgroundProcess {
  const logFd = openSync(opts.logFile, 'a');
  const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', logFd] });
  closeSync(logFd);
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    lines.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.re.test(line)) waiters.splice(i, 1)[0]!.resolve(line);
    }
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => resolve(code));
    child.on('error', () => resolve(null));
  });
  return {
    child,
    exited,
    waitForLine(re, timeoutMs) {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${describeCommand(cmd, args)}: no line matching ${re} within ${timeoutMs} ms (log: ${opts.logFile})`)), timeoutMs);
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${describeCommand(cmd, args)} exited with ${code} before printing a line matching ${re} (log: ${opts.logFile})`));
        });
      });
    },
  };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export async function stopProcess(proc: BackgroundProcess, graceMs = 10_000): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await proc.exited;
  clearTimeout(timer);
}
