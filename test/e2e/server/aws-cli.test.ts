/**
 * The AWS CLI (Debian's awscli, v2), unmodified, against `ebsmount serve` with --endpoint-url:
 * every operation of the EBS direct APIs, with the server verifying SigV4 signatures. What a user
 * pointing their own tooling at the local server sees.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { b64sha, linearOf, seededBlock, startServer, type TestServer } from '../../helpers/server.js';

const ACCESS_KEY = 'AKIDAWSCLITEST';
const SECRET_KEY = 'aws-cli-test-secret';
let server: TestServer;
let work: string;

interface AwsResult { code: number; stdout: string; stderr: string }

function aws(args: string[], secret = SECRET_KEY): Promise<AwsResult> {
  return new Promise((resolve, reject) => {
    execFile('aws', ['ebs', ...args, '--endpoint-url', server.endpoint, '--output', 'json'], {
      env: {
        PATH: process.env.PATH,
        HOME: work,
        AWS_ACCESS_KEY_ID: ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: secret,
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_PAGER: '',
        AWS_MAX_ATTEMPTS: '1',
      },
      timeout: 60_000,
      maxBuffer: 16 * 1024 * 1024,
    }, (err, stdout, stderr) => {
      const code: unknown = err ? (err as { code?: unknown }).code : 0;
      if (typeof code !== 'number') return reject(err ?? new Error('aws: no exit status'));
      resolve({ code, stdout, stderr });
    });
  });
}

async function awsJson<T>(args: string[]): Promise<T> {
  const r = await aws(args);
  assert.equal(r.code, 0, `aws ebs ${args[0]} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ebsmount-awscli-'));
  server = await startServer({ args: ['--access-key-id', ACCESS_KEY, '--secret-access-key', SECRET_KEY] });
});

after(async () => {
  await server?.stop();
  await rm(work, { recursive: true, force: true });
});

test('aws ebs: start, put, complete, list, get, list-changed, and errors, all against the local server', async () => {
  // Parent: blocks 0 and 3.
  const parentBlocks = new Map([[0, seededBlock(1)], [3, seededBlock(2)]]);
  const parent = await awsJson<{ SnapshotId: string; Status: string; BlockSize: number }>(
    ['start-snapshot', '--volume-size', '1', '--description', 'from the aws cli', '--tags', 'Key=owner,Value=cli']);
  assert.match(parent.SnapshotId, /^snap-[0-9a-f]{17}$/);
  assert.equal(parent.Status, 'pending');
  assert.equal(parent.BlockSize, 524288);
  for (const [index, data] of parentBlocks) {
    const file = join(work, `block-${index}`);
    await writeFile(file, data);
    const put = await awsJson<{ Checksum: string; ChecksumAlgorithm: string }>([
      'put-snapshot-block', '--snapshot-id', parent.SnapshotId, '--block-index', String(index),
      '--block-data', file, '--data-length', '524288', '--checksum', b64sha(data), '--checksum-algorithm', 'SHA256',
    ]);
    assert.equal(put.Checksum, b64sha(data));
  }
  const done = await awsJson<{ Status: string }>([
    'complete-snapshot', '--snapshot-id', parent.SnapshotId, '--changed-blocks-count', '2',
    '--checksum', linearOf(parentBlocks), '--checksum-algorithm', 'SHA256', '--checksum-aggregation-method', 'LINEAR',
  ]);
  assert.equal(done.Status, 'completed');

  const listed = await awsJson<{ Blocks: { BlockIndex: number; BlockToken: string }[]; VolumeSize: number }>(
    ['list-snapshot-blocks', '--snapshot-id', parent.SnapshotId]);
  assert.deepEqual(listed.Blocks.map((b) => b.BlockIndex), [0, 3]);
  assert.equal(listed.VolumeSize, 1);

  const out = join(work, 'got-3');
  const got = await awsJson<{ DataLength: number | string; Checksum: string }>([
    'get-snapshot-block', '--snapshot-id', parent.SnapshotId, '--block-index', '3',
    '--block-token', listed.Blocks[1]!.BlockToken, out,
  ]);
  assert.equal(Number(got.DataLength), 524288); // CLI v2.9 prints this header as a string, v1 as a number
  assert.equal(got.Checksum, b64sha(parentBlocks.get(3)!));
  assert.ok((await readFile(out)).equals(parentBlocks.get(3)!));

  // Child overwrites block 3 and adds block 5.
  const child = await awsJson<{ SnapshotId: string; ParentSnapshotId: string }>(
    ['start-snapshot', '--volume-size', '1', '--parent-snapshot-id', parent.SnapshotId]);
  assert.equal(child.ParentSnapshotId, parent.SnapshotId);
  for (const [index, seed] of [[3, 9], [5, 10]] as const) {
    const file = join(work, `child-${index}`);
    await writeFile(file, seededBlock(seed));
    await awsJson(['put-snapshot-block', '--snapshot-id', child.SnapshotId, '--block-index', String(index),
      '--block-data', file, '--data-length', '524288', '--checksum', b64sha(seededBlock(seed)), '--checksum-algorithm', 'SHA256']);
  }
  await awsJson(['complete-snapshot', '--snapshot-id', child.SnapshotId, '--changed-blocks-count', '2']);
  const changed = await awsJson<{ ChangedBlocks: { BlockIndex: number; FirstBlockToken?: string; SecondBlockToken?: string }[] }>(
    ['list-changed-blocks', '--first-snapshot-id', parent.SnapshotId, '--second-snapshot-id', child.SnapshotId]);
  assert.deepEqual(changed.ChangedBlocks.map((b) => b.BlockIndex), [3, 5]);
  assert.ok(changed.ChangedBlocks[0]!.FirstBlockToken && changed.ChangedBlocks[0]!.SecondBlockToken);
  assert.equal(changed.ChangedBlocks[1]!.FirstBlockToken, undefined);

  // Errors come back as the service's: the CLI names the exception.
  const missing = await aws(['list-snapshot-blocks', '--snapshot-id', 'snap-00000000000000000']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /ResourceNotFoundException/);
  const badSig = await aws(['list-snapshot-blocks', '--snapshot-id', parent.SnapshotId], 'wrong-secret');
  assert.notEqual(badSig.code, 0);
  assert.match(badSig.stderr, /AccessDeniedException/);
});
