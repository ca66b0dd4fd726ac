/**
 * E2E: every bad input of `ebsmount mount` prints its one-line message and exits non-zero with
 * nothing mounted and no daemon left: malformed snapshot id, snapshot not found, not completed,
 * access denied, no credentials, endpoint unreachable, mountpoint missing / not a directory /
 * not empty / already a mount, bad option values, and FUSE unavailable (no /dev/fuse and a
 * broken libfuse.so.2, each in a private mount namespace; /dev/fuse owned by another user for a process without capabilities).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StartSnapshotCommand } from '@aws-sdk/client-ebs';
import { startServer, ebsClient, makeSnapshot, seededBlock, type TestServer } from '../../helpers/server.js';
import { CLI_PATH, runCli as runCliRaw, type CliResult, type RunCliOptions } from '../../helpers/cli.js';
import { cleanup, cleanupAll, isMounted, registryEntriesFor, sh, tempDir } from '../../helpers/mounts.js';

describe('mount errors', { timeout: 180_000 }, () => {
  let server: TestServer;
  let authServer: TestServer;
  let work: string;
  let snap: string;
  let pending: string;
  let n = 0;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    authServer = await startServer({ args: ['--access-key-id', 'AKIDGOOD', '--secret-access-key', 'good-secret'] });
    cleanup.add('auth server', () => authServer.stop());
    work = await tempDir('ebsmount-errors-');
    const client = ebsClient(server.endpoint);
    snap = await makeSnapshot(client, new Map([[0, seededBlock(1)]]));
    pending = (await client.send(new StartSnapshotCommand({ VolumeSize: 1 }))).SnapshotId!;
    client.destroy();
  });
  after(() => cleanupAll());

  async function emptyDir(): Promise<string> {
    const d = join(work, `mnt${n++}`);
    await mkdir(d);
    return d;
  }

  /** Asserts the failure: non-zero exit, the message, nothing mounted, no daemon, no registry entry. */
  async function expectFailure(r: CliResult, mnt: string, message: RegExp): Promise<void> {
    assert.notEqual(r.code, 0, `exit code; stderr: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('ebsmount:')).length, 1, `one message line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace');
    assert.equal(r.stdout, '');
    assert.equal(await isMounted(mnt), false, 'something was mounted');
    assert.deepEqual(await registryEntriesFor(mnt), []);
    const daemons = await sh('pgrep', ['-f', `daemon-fd.*`]);
    for (const pid of daemons.stdout.split('\n').filter(Boolean)) {
      const cmd = await sh('cat', [`/proc/${pid}/cmdline`]);
      assert.ok(!cmd.stdout.includes(mnt), `a daemon for ${mnt} still runs (pid ${pid})`);
    }
  }

  /** runCli with logs in the test's temp state dir. */
  const runCli = (args: string[], opts: RunCliOptions = {}) => runCliRaw(args, { ...opts, env: { XDG_STATE_HOME: join(work, 'state'), ...opts.env } });
  const mountArgs = (id: string, mnt: string, endpoint = server.endpoint) => [id, mnt, '--endpoint', endpoint];

  test('malformed snapshot id', async () => {
    const mnt = await emptyDir();
    for (const bad of ['snap-xyz', 'vol-0123456789abcdef0', 'snap-0123456789ABCDEF0', '']) {
      await expectFailure(await runCli(mountArgs(bad, mnt)), mnt, /not a valid snapshot id/);
    }
  });

  test('snapshot not found', async () => {
    const mnt = await emptyDir();
    await expectFailure(await runCli(mountArgs('snap-0123456789abcdef0', mnt)), mnt, /snapshot snap-0123456789abcdef0 not found/);
  });

  test('snapshot not completed', async () => {
    const mnt = await emptyDir();
    await expectFailure(await runCli(mountArgs(pending, mnt)), mnt, new RegExp(`${pending} is not completed`));
  });

  test('access denied', async () => {
    const mnt = await emptyDir();
    const r = await runCli(mountArgs(snap, mnt, authServer.endpoint), { env: { AWS_ACCESS_KEY_ID: 'AKIDBAD', AWS_SECRET_ACCESS_KEY: 'bad-secret' } });
    await expectFailure(r, mnt, /access denied/i);
  });

  test('no credentials', async () => {
    const mnt = await emptyDir();
    const home = join(work, 'empty-home');
    await mkdir(home, { recursive: true });
    const r = await runCli([snap, mnt, '--region', 'us-east-1'], {
      env: {
        HOME: home, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined,
        AWS_ENDPOINT_URL_EBS: undefined, AWS_ENDPOINT_URL: undefined, AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: join(home, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'),
      },
    });
    await expectFailure(r, mnt, /no AWS credentials/);
  });

  test('endpoint unreachable', async () => {
    const mnt = await emptyDir();
    await expectFailure(await runCli(mountArgs(snap, mnt, 'http://127.0.0.1:1')), mnt, /cannot reach the EBS endpoint http:\/\/127\.0\.0\.1:1/);
  });

  test('mountpoint missing, not a directory, not empty, already a mount', async () => {
    const missing = join(work, 'missing');
    await expectFailure(await runCli(mountArgs(snap, missing)), missing, /mountpoint .*missing does not exist/);
    const file = join(work, 'a-file');
    await writeFile(file, 'x');
    await expectFailure(await runCli(mountArgs(snap, file)), file, /is not a directory/);
    const full = await emptyDir();
    await writeFile(join(full, 'something'), 'x');
    await expectFailure(await runCli(mountArgs(snap, full)), full, /is not empty/);
    const busy = await emptyDir();
    await sh('mount', ['-t', 'tmpfs', 'tmpfs', busy]);
    cleanup.add(`umount ${busy}`, () => sh('umount', ['-l', busy]));
    const r = await runCli(mountArgs(snap, busy));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /is already a mountpoint \(tmpfs/);
    await sh('umount', [busy]);
  });

  test('bad option values', async () => {
    const mnt = await emptyDir();
    await expectFailure(await runCli([...mountArgs(snap, mnt), '--cache-size', '12Q']), mnt, /--cache-size '12Q' is not a size/);
    await expectFailure(await runCli([...mountArgs(snap, mnt), '--max-concurrency', '0']), mnt, /--max-concurrency must be an integer from 1 to 1024/);
    await expectFailure(await runCli([...mountArgs(snap, mnt), '--tag', 'novalue']), mnt, /--tag 'novalue' must be key=value/);
  });

  test('FUSE unavailable: no /dev/fuse', async () => {
    const mnt = await emptyDir();
    const script = `mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 && exec "$0" "$@"`;
    const r = await unshared(script, [process.execPath, CLI_PATH, ...mountArgs(snap, mnt)]);
    await expectFailure(r, mnt, /FUSE is not available: \/dev\/fuse does not exist/);
  });

  test('FUSE unavailable: libfuse2 missing', async () => {
    const mnt = await emptyDir();
    const lib = (await sh('sh', ['-c', "ldconfig -p | awk '/libfuse\\.so\\.2 /{print $NF; exit}'"])).stdout.trim();
    assert.ok(lib, 'libfuse.so.2 not found by ldconfig');
    const empty = join(work, 'empty.so');
    await writeFile(empty, '');
    const r = await unshared(`mount --bind '${empty}' '${lib}' && exec "$0" "$@"`, [process.execPath, CLI_PATH, ...mountArgs(snap, mnt)]);
    await expectFailure(r, mnt, /libfuse\.so\.2 cannot be loaded \(install libfuse2/);
  });

  test('FUSE not permitted (the user cannot open /dev/fuse)', async () => {
    // Independent of where the checkout lives and of /dev/fuse's mode on this machine: in a
    // private mount namespace /dev/fuse is replaced by a FUSE device node owned by nobody, mode
    // 0600, and the CLI runs as uid 0 stripped of every capability (so it still reads its own
    // root-owned files, wherever they are, but cannot open a node it does not own).
    const mnt = await emptyDir();
    const nodeDir = join(work, `fuse-node${n++}`);
    await mkdir(nodeDir);
    const script = [
      `mount -t tmpfs tmpfs '${nodeDir}'`,
      `mknod -m 600 '${nodeDir}/fuse' c 10 229`,
      `chown 65534:65534 '${nodeDir}/fuse'`,
      `mount --bind '${nodeDir}/fuse' /dev/fuse`,
      'exec setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all "$0" "$@"',
    ].join(' && ');
    const r = await unshared(script, [process.execPath, CLI_PATH, ...mountArgs(snap, mnt)]);
    await expectFailure(r, mnt, /FUSE is not permitted: cannot open \/dev\/fuse \(EACCES\)/);
  });
});

/** Runs `sh -c script cmd args...` in a private mount namespace (changes there never leak out). */
async function unshared(script: string, argv: string[]): Promise<CliResult> {
  const r = await sh('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, ...argv]);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}
