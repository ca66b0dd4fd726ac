/**
 * The local server against hostile or careless clients, over real sockets: authentication before
 * the body is read, slow clients (headers, body) cut off, a cap on open connections, a warning
 * when listening beyond loopback without keys, and the secret key kept out of the command line.
 * Limits are set small on in-process servers (startEbsServer) so the tests wait seconds, not
 * minutes; the CLI cases run the real `ebsmount serve`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import { startEbsServer, type RunningEbsServer } from '../../../src/server/http-server.js';
import type { ServerLimits } from '../../../src/server/limits.js';
import { silentLogger } from '../../../src/util/log.js';
import { runCli } from '../../helpers/cli.js';
import { ebsClient, makeSnapshot, startServer } from '../../helpers/server.js';

const NO_FAULTS = { latencyMs: 0, latencyJitterMs: 0, rateLimit: 0, throttleRate: 0, errorRate: 0, corruptRate: 0, missingAfterStartMs: 0 };
/** Generous bound for "the server reacts": far above the limits under test, far below the defaults. */
const REACT_MS = 15_000;

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ebsmount-harden-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function inProcess(name: string, o: { limits?: Partial<ServerLimits>; keys?: boolean } = {}): Promise<RunningEbsServer> {
  return startEbsServer({
    dataDir: join(root, name), host: '127.0.0.1', port: 0, logger: silentLogger, faults: NO_FAULTS, tokenTtlSeconds: 3600,
    credentials: o.keys ? { accessKeyId: 'AKIDGOOD', secretAccessKey: 'good-secret' } : undefined, limits: o.limits,
  });
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** What the socket receives until the server closes it (or REACT_MS pass: then 'timeout'). */
function untilClosed(s: Socket): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString('latin1')));
    s.on('error', () => {});
    const t = setTimeout(() => resolve({ data, closed: false }), REACT_MS);
    s.once('close', () => {
      clearTimeout(t);
      resolve({ data, closed: true });
    });
  });
}

/** The first bytes the server answers (or '' when REACT_MS pass without any). */
function firstAnswer(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(''), REACT_MS);
    s.on('error', () => {});
    s.once('data', (d: Buffer) => {
      clearTimeout(t);
      resolve(d.toString('latin1'));
    });
  });
}

function amzDate(): { date: string; day: string } {
  const date = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  return { date, day: date.slice(0, 8) };
}

function putHeaders(port: number, auth: 'forged' | 'none'): string {
  const { date, day } = amzDate();
  const lines = [
    'PUT /snapshots/snap-0123456789abcdef0/blocks/0 HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Content-Length: 524288',
    'x-amz-Data-Length: 524288',
    'x-amz-Checksum-Algorithm: SHA256',
    `x-amz-Checksum: ${Buffer.alloc(32, 1).toString('base64')}`,
    'x-amz-content-sha256: UNSIGNED-PAYLOAD',
    `x-amz-date: ${date}`,
  ];
  if (auth === 'forged') {
    lines.push(`Authorization: AWS4-HMAC-SHA256 Credential=AKIDGOOD/${day}/us-east-1/ebs/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

describe('serve: authentication comes before the body', () => {
  test('a forged signature (keys configured) or no signature at all is refused from the headers, the body never sent', async () => {
    for (const [keys, auth] of [[true, 'forged'], [false, 'none']] as const) {
      const server = await inProcess(`auth-${auth}`, { keys });
      try {
        const s = await open(server.port);
        s.write(putHeaders(server.port, auth)); // headers only: 512 KiB announced, none sent
        const answer = await firstAnswer(s);
        assert.match(answer, /^HTTP\/1\.1 403 /, `answered before the body (got ${JSON.stringify(answer.slice(0, 40))})`);
        assert.match(answer, /x-amzn-ErrorType: AccessDeniedException/i);
        assert.match(answer, /Connection: close/i);
        s.destroy();
      } finally {
        await server.close();
      }
    }
  });
});

describe('serve: slow clients are cut off', () => {
  let server: RunningEbsServer;
  before(async () => {
    server = await inProcess('slow', { limits: { headersTimeoutMs: 1000, requestTimeoutMs: 2000 } });
  });
  after(async () => {
    await server?.close();
  });

  test('headers that never finish: the connection is closed', async () => {
    const s = await open(server.port);
    s.write('GET /snapshots/snap-0123456789abcdef0/blocks HTTP/1.1\r\nHost: x\r\nx-slow: ');
    const r = await untilClosed(s);
    assert.equal(r.closed, true, 'closed by the server');
  });

  test('a body that trickles: the connection is closed', async () => {
    const s = await open(server.port);
    const { date, day } = amzDate();
    s.write(putHeaders(server.port, 'none').replace('\r\n\r\n', `\r\nx-amz-date: ${date}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=A/${day}/us-east-1/ebs/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}\r\n\r\n`));
    s.write(Buffer.alloc(1000));
    const r = await untilClosed(s);
    assert.equal(r.closed, true, 'closed by the server');
  });
});

describe('serve: open connections are capped', () => {
  test('beyond maxConnections a new connection is closed at once; the others keep working', async () => {
    const server = await inProcess('cap', { limits: { maxConnections: 2 } });
    const sockets: Socket[] = [];
    try {
      const ask = async (s: Socket) => {
        const answer = firstAnswer(s);
        s.write(`GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n`);
        return answer;
      };
      for (let i = 0; i < 2; i++) {
        const s = await open(server.port);
        sockets.push(s);
        assert.match(await ask(s), /^HTTP\/1\.1 404 /); // the server has accepted and counted it
      }
      const third = await open(server.port);
      sockets.push(third);
      const r = await untilClosed(third);
      assert.equal(r.closed, true, 'the third connection is closed');
      assert.equal(r.data, '', 'without an answer');
      assert.match(await ask(sockets[0]!), /^HTTP\/1\.1 404 /, 'the first still works');
    } finally {
      for (const s of sockets) s.destroy();
      await server.close();
    }
  });
});

describe('serve: keys and addresses', () => {
  test('listening beyond loopback without keys is warned about; with keys it is not', async () => {
    const open = await startServer({ args: ['--host', '0.0.0.0'] });
    try {
      assert.match(open.stderr(), /listening beyond loopback without --access-key-id/);
    } finally {
      await open.stop();
    }
    const keyed = await startServer({ args: ['--host', '0.0.0.0', '--access-key-id', 'AK', '--secret-access-key', 'x'] });
    try {
      assert.doesNotMatch(keyed.stderr(), /listening beyond loopback/);
      assert.match(keyed.stderr(), /--secret-access-key shows in the process list/);
    } finally {
      await keyed.stop();
    }
  });

  test('the secret from a file or the environment: verified, and never on the command line', async () => {
    const secret = 'file-Secret/Key+42';
    const file = join(root, 'secret-key');
    await writeFile(file, `${secret}\n`, { mode: 0o600 });
    const viaFile = await startServer({ args: ['--access-key-id', 'AKFILE', '--secret-access-key-file', file] });
    try {
      const cmdline = await readFile(`/proc/${viaFile.process.pid}/cmdline`, 'utf8');
      assert.ok(!cmdline.includes(secret));
      const good = ebsClient(viaFile.endpoint, { accessKeyId: 'AKFILE', secretAccessKey: secret });
      const id = await makeSnapshot(good, new Map([[0, Buffer.alloc(524_288, 1)]]));
      good.destroy();
      const bad = ebsClient(viaFile.endpoint, { accessKeyId: 'AKFILE', secretAccessKey: 'other' });
      await assert.rejects(bad.send(new ListSnapshotBlocksCommand({ SnapshotId: id })), (e: Error) => e.name === 'AccessDeniedException');
      bad.destroy();
    } finally {
      await viaFile.stop();
    }
    process.env.EBSMOUNT_SERVE_ACCESS_KEY_ID = 'AKENV';
    process.env.EBSMOUNT_SERVE_SECRET_ACCESS_KEY = secret;
    let viaEnv;
    try {
      viaEnv = await startServer();
    } finally {
      delete process.env.EBSMOUNT_SERVE_ACCESS_KEY_ID;
      delete process.env.EBSMOUNT_SERVE_SECRET_ACCESS_KEY;
    }
    try {
      const good = ebsClient(viaEnv.endpoint, { accessKeyId: 'AKENV', secretAccessKey: secret });
      await makeSnapshot(good, new Map([[0, Buffer.alloc(524_288, 1)]]));
      good.destroy();
      const bad = ebsClient(viaEnv.endpoint, { accessKeyId: 'AKENV', secretAccessKey: 'other' });
      await assert.rejects(bad.send(new ListSnapshotBlocksCommand({ SnapshotId: 'snap-0123456789abcdef0' })), (e: Error) => e.name === 'AccessDeniedException');
      bad.destroy();
    } finally {
      await viaEnv.stop();
    }
    await chmod(file, 0o644);
    const r = await runCli(['serve', '--data', join(root, 'x'), '--access-key-id', 'AK', '--secret-access-key-file', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /secret key file is readable by others \(mode 0644\); chmod 600 it/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
