/**
 * holdLock: a real other process holding a ProcessLock (src/os/process-lock.ts), for tests of
 * "in use" and of release on kill -9.
 *
 * Contract: `holdLock(path)` spawns node, takes the lock and resolves once it is held (rejects
 * if the child could not take it). `kill9()` SIGKILLs it and waits for its exit. Holders still
 * running when the test process exits are SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../src/os/process-lock.js', import.meta.url));
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface LockHolder {
  pid: number;
  /** 'got' or 'busy' (or 'error ...'). */
  answer: string;
  kill9(): Promise<void>;
}

/** Spawns a process that tries the lock once and then stays alive; resolves with its answer. */
export async function tryLockInChild(path: string): Promise<LockHolder> {
  const script = `
    const { acquireProcessLock } = await import(${JSON.stringify(MODULE)});
    try { acquireProcessLock(${JSON.stringify(path)}); console.log('got'); }
    catch (e) { console.log(e.name === 'LockBusyError' ? 'busy' : 'error ' + e.message); }
    setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  live.add(child);
  const kill9 = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    live.delete(child);
  };
  try {
    const answer = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', (code) => reject(new Error(`lock holder exited (${code}) before answering`)));
    });
    return { pid: child.pid!, answer, kill9 };
  } catch (err) {
    await kill9();
    throw err;
  }
}

/** A process holding the lock at `path` (rejects if it could not take it). */
export async function holdLock(path: string): Promise<LockHolder> {
  const h = await tryLockInChild(path);
  if (h.answer !== 'got') {
    await h.kill9();
    throw new Error(`could not take ${path} in a child: ${h.answer}`);
  }
  return h;
}
