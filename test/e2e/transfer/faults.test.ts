/**
 * import / export against a misbehaving `ebsmount serve`: throttling, 500s, corrupted block
 * bodies, latency, "snapshot does not exist" right after StartSnapshot, and block tokens that
 * expire after one second. Every round trip must still be byte-identical, and the debug log
 * must show that the retries really happened (not-yet for puts, token refreshes for reads).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { runCli } from '../../helpers/cli.js';
import { ebsClient, listAllBlocks, listAllChanged, startServer, type TestServer } from '../../helpers/server.js';
import { run, seededBytes } from '../../helpers/images.js';
import { assertSameImage } from './common.js';

let server: TestServer;
let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ebsmount-e2e-faults-'));
  server = await startServer({
    args: [
      '--throttle-rate', '0.05', '--error-rate', '0.05', '--corrupt-rate', '0.1',
      '--latency-ms', '20', '--latency-jitter-ms', '10', '--missing-after-start-ms', '1500', '--token-ttl', '1',
    ],
  });
});

after(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await runCli([...args, '--endpoint', server.endpoint, '--log-level', 'debug'], { timeoutMs: 170_000 });
  assert.equal(r.code, 0, `ebsmount ${args.join(' ')} failed: ${r.stderr.split('\n').filter((l) => !l.includes('"level":20')).join('\n')}`);
  return r;
}

function retryKinds(stderr: string): Set<string> {
  const kinds = new Set<string>();
  for (const line of stderr.split('\n')) {
    if (!line.includes('retry')) continue;
    try {
      const j = JSON.parse(line) as { kind?: string };
      if (j.kind) kinds.add(j.kind);
    } catch {
      /* not JSON */
    }
  }
  return kinds;
}

test('round trips survive throttling, 5xx, corruption, latency, the not-yet window and expiring tokens', async () => {
  const image = join(work, 'faulty.img');
  // 40 MiB: random data with a hole in the middle.
  const fh = await open(image, 'w');
  try {
    await fh.truncate(40 * 1024 * 1024);
    await fh.write(seededBytes(5, 'a', 16 * 1024 * 1024), 0, 16 * 1024 * 1024, 0);
    await fh.write(seededBytes(5, 'b', 12 * 1024 * 1024), 0, 12 * 1024 * 1024, 28 * 1024 * 1024);
  } finally {
    await fh.close();
  }
  const imp = await cli(['import', image, '--concurrency', '8']);
  const id = imp.stdout.trim();
  assert.match(id, /^snap-[0-9a-f]{17}$/);
  assert.ok(retryKinds(imp.stderr).has('not-yet'), 'puts were retried through the "does not exist" window');

  // One block at a time at ~25 ms each: far longer than the 1 s token lifetime.
  const out = join(work, 'faulty.export');
  const exp = await cli(['export', id, out, '--concurrency', '1']);
  await assertSameImage(image, out);
  const kinds = retryKinds(exp.stderr);
  assert.ok(kinds.has('token'), `expired tokens were refreshed (retry kinds: ${[...kinds].join(',')})`);
  assert.ok(kinds.has('transient') || kinds.has('throttle'), 'faults were retried');

  // A child over that parent, with the same faults: only the changed blocks, exact content.
  const child = join(work, 'child.img');
  await run('cp', ['--sparse=always', image, child]);
  const cfh = await open(child, 'r+');
  try {
    await cfh.write(Buffer.alloc(BLOCK_SIZE), 0, BLOCK_SIZE, 3 * BLOCK_SIZE); // zero a data block
    await cfh.write(seededBytes(6, 'c', BLOCK_SIZE), 0, BLOCK_SIZE, 40 * BLOCK_SIZE); // data into the hole
    await cfh.write(Buffer.from('changed'), 0, 7, 70 * BLOCK_SIZE + 12345); // a few bytes
  } finally {
    await cfh.close();
  }
  const childId = (await cli(['import', child, '--parent', id, '--concurrency', '8'])).stdout.trim();
  const client = ebsClient(server.endpoint, { maxAttempts: 10 });
  try {
    const changed = await listAllChanged(client, id, childId);
    assert.deepEqual(changed.map((c) => c.BlockIndex), [3, 40, 70]);
  } finally {
    client.destroy();
  }
  const childOut = join(work, 'child.export');
  await cli(['export', childId, childOut, '--concurrency', '16']);
  await assertSameImage(child, childOut);
});

test('an all-zero image imports as a snapshot without blocks, and exports back', async () => {
  const image = join(work, 'zeros.img');
  await writeFile(image, Buffer.alloc(3 * BLOCK_SIZE));
  const id = (await cli(['import', image])).stdout.trim();
  const client = ebsClient(server.endpoint, { maxAttempts: 10 });
  try {
    assert.equal((await listAllBlocks(client, id)).indexes.length, 0);
  } finally {
    client.destroy();
  }
  const out = join(work, 'zeros.export');
  await cli(['export', id, out]);
  await assertSameImage(image, out);
});
