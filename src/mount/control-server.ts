/**
 * ControlServer: the daemon side of the control socket (control-protocol.ts).
 *
 * Contract: listens on `path` (a stale socket file is replaced; mode 0600 so only the owner
 * talks to it); each connection sends one request line; `handler` answers through `send` and
 * must end with a final message, after which the connection is closed. A malformed request gets
 * `{ok:false}`; a handler that throws gets `{ok:false, error}`. Never throws into the daemon.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { chmod, rm } from 'node:fs/promises';
import { isFinal, type ControlMessage, type ControlRequest } from './control-protocol.js';

export type ControlHandler = (req: ControlRequest, send: (m: ControlMessage) => void) => Promise<void>;

export class ControlServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly pending = new Set<Socket>();

  constructor(readonly path: string, private readonly handler: ControlHandler) {}

  async listen(): Promise<void> {
    await rm(this.path, { force: true });
    const server = createServer((sock) => this.onConnection(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => undefined);
    await chmod(this.path, 0o600);
  }

  /**
   * Stops accepting connections and removes the socket file. Connections still waiting for their
   * final message (the unmount request that caused this) are left to finish; idle ones end.
   */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    server?.close();
    for (const s of this.sockets) if (!this.pending.has(s)) s.destroy();
    await rm(this.path, { force: true });
  }

  /** Resolves once every connection has closed (final answers delivered), or after `ms`. */
  async drained(ms = 3_000): Promise<void> {
    const until = Date.now() + ms;
    while (this.sockets.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  }

  private onConnection(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => {
      this.sockets.delete(sock);
      this.pending.delete(sock);
    });
    sock.on('error', () => undefined);
    let buf = '';
    let handled = false;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      if (handled) return;
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 65_536) sock.destroy();
        return;
      }
      handled = true;
      this.pending.add(sock);
      const line = buf.slice(0, nl);
      let done = false;
      const send = (m: ControlMessage): void => {
        if (done || sock.destroyed) return;
        sock.write(JSON.stringify(m) + '\n');
        if (isFinal(m)) {
          done = true;
          this.pending.delete(sock);
          sock.end();
        }
      };
      let req: ControlRequest;
      try {
        req = JSON.parse(line) as ControlRequest;
        if (!req || typeof req !== 'object' || (req.op !== 'status' && req.op !== 'unmount')) throw new Error('unknown request');
      } catch {
        send({ ok: false, error: 'malformed request' });
        return;
      }
      this.handler(req, send).then(
        () => send({ ok: false, error: 'the daemon gave no answer' }),
        (err: unknown) => send({ ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
    });
  }
}
