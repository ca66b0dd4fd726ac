/**
 * runCli: runs the built CLI (`node dist/src/cli/main.js ...`) as a child process and collects
 * its exit code, stdout and stderr — for end-to-end tests of commands as users run them.
 *
 * Contract: never rejects on a non-zero exit (tests assert on `code`); rejects only if the
 * process cannot start. `timeoutMs` (default 120 s) kills it with SIGKILL and resolves with
 * code null. `env` is merged over process.env (a value of undefined removes a variable);
 * `umask` runs the CLI under that umask (through sh), so tests of file modes do not depend on
 * the test runner's. spawnCli starts it without waiting (the caller kills and awaits 'close');
 * waitFor polls a condition (no fixed sleeps) until a generous deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI_PATH = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  timeoutMs?: number;
  cwd?: string;
  umask?: number;
}

function command(args: string[], opts: RunCliOptions): [string, string[]] {
  if (opts.umask === undefined) return [process.execPath, [CLI_PATH, ...args]];
  return ['sh', ['-c', `umask ${opts.umask.toString(8).padStart(3, '0')} && exec "$@"`, 'sh', process.execPath, CLI_PATH, ...args]];
}

export function spawnCli(args: string[], opts: RunCliOptions = {}): ChildProcess {
  const [cmd, argv] = command(args, opts);
  return spawn(cmd, argv, { env: cliEnv(opts.env), cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Polls `cond` every 50 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [cmd, argv] = command(args, opts);
    const child = spawn(cmd, argv, {
      env: cliEnv(opts.env),
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/**
 * The CLI as user nobody (uid 65534), wherever the checkout lives: in a private mount namespace
 * the checkout is bind-mounted onto a directory nobody can reach (a checkout under a 0700
 * directory, e.g. one made by mktemp -d, is otherwise out of nobody's reach: MODULE_NOT_FOUND).
 * `view`: an empty directory nobody can reach (its parents 0755 or more open).
 */
export function runCliAsNobody(view: string, args: string[]): Promise<CliResult> {
  const repo = resolve(dirname(CLI_PATH), '..', '..', '..');
  const cli = join(view, relative(repo, CLI_PATH));
  const script = `mount --bind "$1" "$2" && shift 2 && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"`;
  return new Promise((done, reject) => {
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', repo, view, process.execPath, cli, ...args], {
      env: cliEnv({ HOME: '/nonexistent' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}
