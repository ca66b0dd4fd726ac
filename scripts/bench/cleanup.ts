/**
 * Cleanup registry of the benchmark: every mount, loop device, process and temp dir it creates
 * registers how to undo itself here, and `runAll()` undoes them newest first, each step bounded
 * and its failure recorded rather than stopping the others.
 *
 * Also writes the pid and start time of every long-lived child to `<work>/pids` ("PID START"
 * lines), so scripts/bench.sh's trap can still stop them when this process itself is killed with
 * SIGKILL, and only them.
 */
import { appendFileSync, readFileSync } from 'node:fs';

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot); undefined when gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3];
  } catch {
    return undefined;
  }
}

interface Step {
  name: string;
  undo: () => Promise<void> | void;
  done: boolean;
}

export class Cleanup {
  private readonly steps: Step[] = [];

  constructor(private readonly pidFile?: string) {}

  /** Registers `undo`; the returned function runs it now (once) and forgets it. */
  add(name: string, undo: () => Promise<void> | void): () => Promise<void> {
    const step: Step = { name, undo, done: false };
    this.steps.push(step);
    return async () => {
      if (step.done) return;
      step.done = true;
      await undo();
    };
  }

  /** Records `pid` with its start time, so the shell trap never signals a recycled pid. */
  trackPid(pid: number | undefined): void {
    if (!this.pidFile || !pid) return;
    const start = processStartTime(pid);
    if (start !== undefined) appendFileSync(this.pidFile, `${pid} ${start}\n`);
  }

  /** Undoes everything still registered, newest first. Returns the failures, as messages. */
  async runAll(stepTimeoutMs = 60_000): Promise<string[]> {
    const failures: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      if (step.done) continue;
      step.done = true;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(step.undo),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('timed out')), stepTimeoutMs);
          }),
        ]);
      } catch (err) {
        failures.push(`${step.name}: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        clearTimeout(timer);
      }
    }
    return failures;
  }
}
