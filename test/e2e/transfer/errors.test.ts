/**
 * Bad inputs to `import` / `export` through the real CLI: each gives one line on stderr
 * (`ebsmount: ...`), nothing on stdout, a non-zero exit, and leaves no output file behind.
 * Also the endpoint from AWS_ENDPOINT_URL_EBS, and a server that checks signatures (wrong
 * credentials refused with a clear line, credentials from the environment accepted).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StartSnapshotCommand } from '@aws-sdk/client-ebs';
import { runCli, spawnCli, waitFor, type CliResult } from '../../helpers/cli.js';
import { ebsClient, startServer, type TestServer } from '../../helpers/server.js';
import { seededBytes } from '../../helpers/images.js';
import { importCli } from './common.js';

let server: TestServer;
let work: string;
let image: string;
let snapId: string;

function oneLineError(r: CliResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^ebsmount: [^\n]+\n$/, `one line: ${JSON.stringify(r.stderr)}`);
  assert.match(r.stderr, pattern);
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ebsmount-e2e-errors-'));
  image = join(work, 'small.img');
  await writeFile(image, seededBytes(1, 'img', 2 * 1024 * 1024));
  server = await startServer();
  snapId = await importCli(server.endpoint, image);
});

after(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('import', () => {
  test('missing image', async () => {
    oneLineError(await runCli(['import', join(work, 'nope.img'), '--endpoint', server.endpoint]), 1, /image .*nope\.img does not exist/);
  });

  test('a directory as image', async () => {
    oneLineError(await runCli(['import', work, '--endpoint', server.endpoint]), 1, /is a directory/);
  });

  test('malformed parent id', async () => {
    oneLineError(await runCli(['import', image, '--parent', 'snap-nothex', '--endpoint', server.endpoint]), 2, /'snap-nothex' is not a snapshot id/);
  });

  test('unknown parent', async () => {
    oneLineError(await runCli(['import', image, '--parent', 'snap-0000000000000beef', '--endpoint', server.endpoint]), 1,
      /^ebsmount: parent snapshot snap-0000000000000beef not found \(check the id and the region\)\n$/);
  });

  test('bad --tag and --timeout-minutes', async () => {
    oneLineError(await runCli(['import', image, '--tag', 'novalue', '--endpoint', server.endpoint]), 2, /--tag 'novalue' must be key=value/);
    oneLineError(await runCli(['import', image, '--timeout-minutes', '5', '--endpoint', server.endpoint]), 2, /--timeout-minutes must be an integer from 10 to 4320/);
  });

  test('unreachable endpoint: reported within seconds', async () => {
    const port = await closedPort();
    const t0 = Date.now();
    const r = await runCli(['import', image, '--endpoint', `http://127.0.0.1:${port}`]);
    oneLineError(r, 1, new RegExp(`^ebsmount: cannot reach the EBS endpoint http://127\\.0\\.0\\.1:${port} \\(connection refused\\)\\n$`));
    assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
  });

  test('malformed endpoint URL', async () => {
    oneLineError(await runCli(['import', image, '--endpoint', 'ftp://x']), 2, /invalid endpoint URL/);
  });

  test('endpoint from AWS_ENDPOINT_URL_EBS', async () => {
    const r = await runCli(['import', image, '--description', 'via env'], { env: { AWS_ENDPOINT_URL_EBS: server.endpoint } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^snap-[0-9a-f]{17}\n$/);
  });
});

describe('export', () => {
  test('malformed snapshot id', async () => {
    oneLineError(await runCli(['export', 'snap-xyz', join(work, 'o1.img'), '--endpoint', server.endpoint]), 2, /'snap-xyz' is not a snapshot id/);
  });

  test('unknown snapshot: nothing created', async () => {
    const out = join(work, 'o2.img');
    oneLineError(await runCli(['export', 'snap-0123456789abcdef0', out, '--endpoint', server.endpoint]), 1,
      /^ebsmount: snapshot snap-0123456789abcdef0 not found \(check the id and the region\)\n$/);
    assert.deepEqual((await readdir(work)).filter((f) => f.startsWith('o2') || f.includes('partial')), []);
  });

  test('snapshot not completed', async () => {
    const client = ebsClient(server.endpoint);
    let pending: string;
    try {
      pending = (await client.send(new StartSnapshotCommand({ VolumeSize: 1 }))).SnapshotId!;
    } finally {
      client.destroy();
    }
    oneLineError(await runCli(['export', pending, join(work, 'o3.img'), '--endpoint', server.endpoint]), 1,
      new RegExp(`^ebsmount: snapshot ${pending} is not completed yet \\(status pending\\)\\n$`));
  });

  test('existing file without --force is kept; with --force it is replaced', async () => {
    const out = join(work, 'o4.img');
    await writeFile(out, 'keep me');
    oneLineError(await runCli(['export', snapId, out, '--endpoint', server.endpoint]), 1, /already exists \(use --force to overwrite it\)/);
    assert.equal(await readFile(out, 'utf8'), 'keep me');
    const r = await runCli(['export', snapId, out, '--force', '--endpoint', server.endpoint]);
    assert.equal(r.code, 0, r.stderr);
    const data = await readFile(out);
    assert.ok(data.subarray(0, 2 * 1024 * 1024).equals(seededBytes(1, 'img', 2 * 1024 * 1024)));
  });

  test('the export and its partial file are 0600 whatever the umask; a planted link is not followed', async () => {
    const out = join(work, 'o-modes.img');
    const victim = join(work, 'victim');
    await writeFile(victim, 'do not touch');
    // A link named like the partial file: an export must neither follow nor truncate it.
    await symlink(victim, join(work, '.o-modes.img.ebsmount-partial'));
    const r = await runCli(['export', snapId, out, '--endpoint', server.endpoint], { umask: 0o022 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await stat(out)).mode & 0o777, 0o600);
    assert.equal(await readFile(victim, 'utf8'), 'do not touch');
    assert.ok(!(await readdir(work)).some((f) => f.includes('o-modes.img.ebsmount-partial')), 'partial file renamed');
    // While it is written (a server that corrupts every read keeps the export retrying): the
    // partial file is 0600 too.
    const slow = await startServer({ args: ['--corrupt-rate', '1'] });
    try {
      const slowSnap = await importCli(slow.endpoint, image);
      const out2 = join(work, 'o-modes2.img');
      const partial = join(work, '.o-modes2.img.ebsmount-partial');
      const child = spawnCli(['export', slowSnap, out2, '--endpoint', slow.endpoint], { umask: 0o022 });
      try {
        await waitFor(async () => (await stat(partial).catch(() => undefined)) !== undefined, 60_000, 'the partial file');
        assert.equal((await stat(partial)).mode & 0o777, 0o600);
      } finally {
        child.kill('SIGINT');
        await new Promise((r) => child.once('close', r));
      }
    } finally {
      await slow.stop();
    }
  });

  test('missing output directory', async () => {
    oneLineError(await runCli(['export', snapId, join(work, 'no', 'dir.img'), '--endpoint', server.endpoint]), 1, /directory .* does not exist/);
  });

  test('unreachable endpoint', async () => {
    const port = await closedPort();
    oneLineError(await runCli(['export', snapId, join(work, 'o5.img'), '--endpoint', `http://127.0.0.1:${port}`]), 1, /cannot reach the EBS endpoint .*\(connection refused\)/);
  });
});

describe('signature checking server', () => {
  let authServer: TestServer;
  before(async () => {
    authServer = await startServer({ args: ['--access-key-id', 'AKIDREAL', '--secret-access-key', 'real-secret'] });
  });
  after(async () => {
    await authServer?.stop();
  });

  test('wrong credentials: access denied, one line', async () => {
    const r = await runCli(['import', image, '--endpoint', authServer.endpoint], { env: { AWS_ACCESS_KEY_ID: 'AKIDWRONG', AWS_SECRET_ACCESS_KEY: 'nope' } });
    oneLineError(r, 1, new RegExp(`^ebsmount: access denied by the EBS endpoint ${authServer.endpoint.replace(/\./g, '\\.')}: .*\\(check the access key and secret\\)\\n$`));
  });

  test('credentials from the environment are used', async () => {
    const env = { AWS_ACCESS_KEY_ID: 'AKIDREAL', AWS_SECRET_ACCESS_KEY: 'real-secret' };
    const r = await runCli(['import', image, '--endpoint', authServer.endpoint], { env });
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    const out = join(work, 'auth.img');
    const e = await runCli(['export', id, out, '--endpoint', authServer.endpoint], { env });
    assert.equal(e.code, 0, e.stderr);
    assert.ok((await readFile(out)).subarray(0, 2 * 1024 * 1024).equals(seededBytes(1, 'img', 2 * 1024 * 1024)));
  });
});
