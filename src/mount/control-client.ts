/**
 * controlRequest: the CLI side of the control socket (control-protocol.ts).
 *
 * Contract: connects to `socketPath`, sends one request, passes progress messages to
 * `onProgress`, and resolves with the final message. Rejects with a ControlUnreachable error when
 * nothing listens there (daemon gone: ENOENT / ECONNREFUSED), or when the connection closes or
 * `timeoutMs` passes without a final message.
 */
import { connect } from 'node:net';
import { isFinal, type ControlMessage, type ControlRequest, type FinalMessage } from './control-protocol.js';

export class ControlUnreachable extends Error {
  override readonly name = 'ControlUnreachable';
}

export function controlRequest(
  socketPath: string,
  req: ControlRequest,
  opts: { timeoutMs?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<FinalMessage> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    let settled = false;
    let connected = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      fn();
    };
    const timer = opts.timeoutMs
      ? setTimeout(() => finish(() => reject(new ControlUnreachable(`the mount daemon did not answer within ${opts.timeoutMs! / 1000} s`))), opts.timeoutMs)
      : undefined;
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      connected = true;
      sock.write(JSON.stringify(req) + '\n');
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: ControlMessage;
        try {
          msg = JSON.parse(line) as ControlMessage;
        } catch {
          continue;
        }
        if (isFinal(msg)) return finish(() => resolve(msg as FinalMessage));
        opts.onProgress?.(msg.progress.done, msg.progress.total);
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) =>
      finish(() => reject(new ControlUnreachable(connected ? `control connection failed: ${err.message}` : `no mount daemon listens on ${socketPath} (${err.code ?? err.message})`))),
    );
    sock.on('close', () => finish(() => reject(new ControlUnreachable('the mount daemon closed the connection without an answer'))));
  });
}
