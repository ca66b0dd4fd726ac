/**
 * `ebsmount diff SNAP_A SNAP_B` end to end against a real `ebsmount serve` (SigV4 verified, short
 * listing pages): its figures equal what the server's ListChangedBlocks says through the SDK and
 * through the unmodified AWS CLI (`aws ebs list-changed-blocks`, paged by hand with
 * --next-token); exit status 1 with differences, 0 without; unrelated snapshots and unknown ids
 * fail with one line and exit 2; on a GPT disk, the changed blocks per partition; no root needed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../helpers/cli.js';
import { run } from '../../helpers/images.js';
import { ebsClient, listAllChanged, makeSnapshot, seededBlock, startServer, type TestServer } from '../../helpers/server.js';
import type { EBSClient } from '@aws-sdk/client-ebs';

const KEY = 'AKIDDIFFTEST';
const SECRET = 'diff-test-secret';
let server: TestServer;
let client: EBSClient;
let home: string;

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'ebsmount-diff-'));
  // A small scan window gives short and empty pages: the diff must follow NextToken through them.
  server = await startServer({ args: ['--access-key-id', KEY, '--secret-access-key', SECRET, '--list-scan-window', '3000'] });
  client = ebsClient(server.endpoint, { accessKeyId: KEY, secretAccessKey: SECRET });
});

after(async () => {
  client?.destroy();
  await server?.stop();
  await rm(home, { recursive: true, force: true });
});

const env = () => ({ AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-east-1', HOME: home, AWS_PROFILE: undefined });

function diff(args: string[]) {
  return runCli(['diff', ...args, '--endpoint', server.endpoint], { env: env(), timeoutMs: 120_000 });
}

interface AwsChanged { ChangedBlocks?: { BlockIndex: number; FirstBlockToken?: string; SecondBlockToken?: string }[]; NextToken?: string }

function awsPage(a: string, b: string, next?: string): Promise<AwsChanged> {
  return new Promise((resolve, reject) => {
    execFile('aws', ['ebs', 'list-changed-blocks', '--first-snapshot-id', a, '--second-snapshot-id', b,
      ...(next ? ['--next-token', next] : []), '--endpoint-url', server.endpoint, '--output', 'json'], {
      env: { PATH: process.env.PATH, HOME: home, AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_DEFAULT_REGION: 'us-east-1', AWS_PAGER: '' },
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
    }, (err, stdout, stderr) => (err ? reject(new Error(`aws: ${stderr}`)) : resolve(JSON.parse(stdout) as AwsChanged)));
  });
}

async function awsChanged(a: string, b: string): Promise<{ index: number; side: string }[]> {
  const out: { index: number; side: string }[] = [];
  let next: string | undefined;
  do {
    const page = await awsPage(a, b, next);
    for (const x of page.ChangedBlocks ?? []) out.push({ index: x.BlockIndex, side: x.FirstBlockToken && x.SecondBlockToken ? 'both' : x.FirstBlockToken ? 'a' : 'b' });
    next = page.NextToken;
  } while (next);
  return out;
}

test('diff: figures equal ListChangedBlocks (SDK and AWS CLI); ranges merged; exit 1 with differences, 0 without', async () => {
  // Parent: blocks 0–99 and 5000–5009 of a 4 GiB volume. Child: rewrites 10–29 and 5005, adds
  // 6000–6002 and 8000 (a block the parent lacks). Grandchild of nothing new for the "no diff" case.
  const parentBlocks = new Map<number, Buffer>();
  for (let i = 0; i < 100; i++) parentBlocks.set(i, seededBlock(i + 1));
  for (let i = 5000; i < 5010; i++) parentBlocks.set(i, seededBlock(i + 1));
  const parent = await makeSnapshot(client, parentBlocks, { volumeSize: 4 });
  const childBlocks = new Map<number, Buffer>();
  for (let i = 10; i < 30; i++) childBlocks.set(i, seededBlock(100_000 + i));
  childBlocks.set(5005, seededBlock(7));
  for (const i of [6000, 6001, 6002, 8000]) childBlocks.set(i, seededBlock(200_000 + i));
  const child = await makeSnapshot(client, childBlocks, { volumeSize: 4, parent });

  const r = await diff([parent, child, '--json']);
  assert.equal(r.code, 1, r.stderr);
  const doc = JSON.parse(r.stdout) as Record<string, any>;
  const sdk = (await listAllChanged(client, parent, child, { maxResults: 100 })).map((b) => ({
    index: b.BlockIndex!,
    side: b.FirstBlockToken && b.SecondBlockToken ? 'both' : b.FirstBlockToken ? 'a' : 'b',
  }));
  const cli = await awsChanged(parent, child);
  assert.equal(sdk.length, 25);
  assert.deepEqual(doc.blocks, sdk, 'every changed index and side as the SDK lists them');
  assert.deepEqual(doc.blocks, cli, 'and as the AWS CLI lists them');
  assert.equal(doc.changedBlocks, 25);
  assert.equal(doc.changedBytes, 25 * 524_288);
  assert.deepEqual(doc.sides, { both: 21, a: 0, b: 4 });
  assert.deepEqual(doc.ranges, [{ first: 10, last: 29 }, { first: 5005, last: 5005 }, { first: 6000, last: 6002 }, { first: 8000, last: 8000 }]);
  assert.equal(doc.volumeSizeGiB, 4);
  assert.ok(doc.requests.listChanged >= 3, `the 3000-block scan window spreads the listing over pages (${doc.requests.listChanged} requests)`);

  const text = await diff([parent, child]);
  assert.equal(text.code, 1, text.stderr);
  assert.match(text.stdout, new RegExp(`^${parent} → ${child}: 25 changed blocks \\(12\\.5 MiB\\) of 8192 in the 4 GiB volume`, 'm'));
  assert.match(text.stdout, /^ {2}10–29 +20 blocks +10\.0 MiB {2}bytes 5242880–15728639$/m);
  assert.match(text.stdout, /^requests: \d+ ListChangedBlocks/m);

  // Reversed: the child's new blocks are "only in A".
  const rev = JSON.parse((await diff([child, parent, '--json'])).stdout) as Record<string, any>;
  assert.deepEqual(rev.sides, { both: 21, a: 4, b: 0 });

  const same = await diff([child, child]);
  assert.equal(same.code, 0, same.stderr);
  assert.match(same.stdout, /: 0 changed blocks/);
});

test('diff: unrelated snapshots fail with one line saying why EBS cannot compare them (exit 2)', async () => {
  const x = await makeSnapshot(client, new Map([[0, seededBlock(1)]]));
  const y = await makeSnapshot(client, new Map([[0, seededBlock(1)]]));
  const r = await diff([x, y]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^ebsmount: ${x} and ${y} are not of one lineage: EBS's ListChangedBlocks compares only snapshots of the same volume`));

  const missing = await diff([x, 'snap-0123456789abcdef0']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^ebsmount: snapshot snap-0123456789abcdef0 not found/);
  const bad = await diff([x, 'snap-xyz']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /'snap-xyz' is not a snapshot id/);
});

test('diff: on a GPT disk, the changed blocks per partition (table read by the partition parser from B)', async () => {
  // A 1 GiB GPT disk: p1 at 1 MiB (100 MiB), p2 right after (200 MiB). Parent image with data in
  // both; the child (import --parent) changes 3 MiB of p1 and 1 MiB of p2.
  const img = join(home, 'gpt.img');
  await run('truncate', ['-s', '1G', img]);
  await run('sgdisk', ['-n', '1:2048:+100M', '-t', '1:8300', '-n', '2:0:+200M', '-t', '2:8300', img]);
  const MiB = 1024 * 1024;
  const p1 = MiB;
  const p2 = MiB + 100 * MiB;
  const put = async (offset: number, mib: number, seed: number) => {
    const fh = await open(img, 'r+');
    try {
      for (let i = 0; i < mib; i++) await fh.write(seededBlock(seed + i).subarray(0, MiB / 2), 0, MiB / 2, offset + i * MiB);
    } finally {
      await fh.close();
    }
  };
  await put(p1, 10, 1);
  await put(p2, 10, 100);
  const imp = (args: string[]) => runCli(['import', img, ...args, '--endpoint', server.endpoint], { env: env(), timeoutMs: 120_000 });
  const parentRun = await imp([]);
  assert.equal(parentRun.code, 0, parentRun.stderr);
  const parent = parentRun.stdout.trim();
  await put(p1 + 2 * MiB, 3, 1000); // p1: 3 MiB rewritten, one half-block each = 3 blocks
  await put(p2 + 4 * MiB, 1, 2000); // p2: 1 block
  const childRun = await imp(['--parent', parent]);
  assert.equal(childRun.code, 0, childRun.stderr);
  const child = childRun.stdout.trim();

  const r = await diff([parent, child, '--json']);
  assert.equal(r.code, 1, r.stderr);
  const doc = JSON.parse(r.stdout) as Record<string, any>;
  assert.equal(doc.changedBlocks, 4);
  assert.equal(doc.partitionTable.scheme, 'gpt');
  assert.deepEqual(doc.partitionTable.partitions.map((p: any) => [p.number, p.startBytes, p.changedBlocks]), [[1, p1, 3], [2, p2, 1]]);
  assert.equal(doc.partitionTable.outsideAnyPartition, 0);
  assert.equal(doc.requests.get, 1, 'only block 0 (protective MBR, GPT header and entries) is fetched');
  const text = await diff([parent, child]);
  assert.match(text.stdout, /^partitions \(GPT table of snap-[0-9a-f]+\):$/m);
  assert.match(text.stdout, /^ {2}p1 +Linux filesystem +100 MiB at 1\.00 MiB +3 changed blocks$/m);
  assert.match(text.stdout, /^ {2}p2 +Linux filesystem +200 MiB at 101 MiB +1 changed block$/m);
});
