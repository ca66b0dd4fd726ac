/**
 * `ebsmount serve` for the benchmark: one data directory, restarted with other settings (latency,
 * rate limit) between phases; the snapshots survive because they live in the data directory.
 *
 * Contract: `start()` resolves with the endpoint once the server printed its http://HOST:PORT line;
 * a running server is stopped first. The server is registered with the Cleanup while it runs.
 */
import { readFileSync } from 'node:fs';
import type { Cleanup } from './cleanup.js';
import type { EbsmountCli } from './ebsmount-cli.js';
import { startBackground, stopProcess, type BackgroundProcess } from './exec.js';

export interface ServerSettings {
  latencyMs: number;
  jitterMs: number;
  rateLimit: number;
}

export class LocalServer {
  private proc: BackgroundProcess | undefined;
  private release: (() => Promise<void>) | undefined;
  endpoint = '';
  current: ServerSettings | undefined;

  constructor(
    private readonly cli: EbsmountCli,
    private readonly dataDir: string,
    private readonly logFile: string,
    private readonly cleanup: Cleanup,
  ) {}

  get pid(): number | undefined {
    return this.proc?.child.pid;
  }

  async start(s: ServerSettings): Promise<string> {
    await this.stop();
    const args = [
      this.cli.mainJs, 'serve', '--data', this.dataDir, '--port', '0',
      '--latency-ms', String(s.latencyMs), '--latency-jitter-ms', String(s.jitterMs), '--rate-limit', String(s.rateLimit),
    ];
    const proc = startBackground(process.execPath, args, { env: this.cli.childEnv(), logFile: this.logFile });
    this.proc = proc;
    this.release = this.cleanup.add('ebsmount serve', () => stopProcess(proc));
    this.cleanup.trackPid(proc.child.pid);
    let line: string;
    try {
      line = await proc.waitForLine(/https?:\/\/[\w.[\]:-]+:\d+/, 30_000);
    } catch (err) {
      const logTail = readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
      throw new Error(`${(err as Error).message}\n${logTail}`);
    }
    this.endpoint = line.match(/https?:\/\/[\w.[\]:-]+:\d+/)![0];
    this.current = s;
    return this.endpoint;
  }

  async stop(): Promise<void> {
    const release = this.release;
    this.proc = undefined;
    this.release = undefined;
    this.current = undefined;
    if (release) await release();
  }
}
