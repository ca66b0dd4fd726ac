/**
 * Readiness pipe between `ebsmount mount` (parent) and its detached daemon (child).
 *
 * The parent spawns the child with a pipe as fd 3 (`--daemon-fd 3`). The child writes exactly one
 * JSON line on it — `{ok:true, ...}` once the mount is live, or `{ok:false, message, exitCode}` —
 * and closes it. The parent prints the result and exits only after reading that line (or after
 * the child died without one).
 */
import { closeSync, writeSync } from 'node:fs';

export type ReadyMessage =
  | { ok: true; pid: number; snapshotId: string; mountpoint: string; imagePath: string; log: string | null }
  | { ok: false; message: string; exitCode: number };

export class ReadinessPipe {
  private closed = false;

  constructor(private readonly fd: number) {}

  send(msg: ReadyMessage): void {
    if (this.closed) return;
    this.closed = true;
    try {
      writeSync(this.fd, JSON.stringify(msg) + '\n');
    } catch {
      // the parent is gone: nothing to tell
    }
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

export function parseReadyLine(text: string): ReadyMessage | undefined {
  const line = text.split('\n').find((l) => l.trim().startsWith('{'));
  if (!line) return undefined;
  try {
    const m = JSON.parse(line) as ReadyMessage;
    return typeof m === 'object' && m !== null && 'ok' in m ? m : undefined;
  } catch {
    return undefined;
  }
}
