/**
 * End-to-end op deadline (real FUSE, real server with --latency-ms above the deadline): a read
 * that cannot finish in time fails with EIO from ebsmount itself, the daemon stays up, the next
 * read of the same bytes is correct (the fetch went on and filled the cache); on the writable
 * mount a write that needed the parent's block fails EIO and never lands in the journal, while
 * the acknowledged whole-block write does: the child snapshot holds exactly what was acknowledged.
 *
 * The deadline is lowered with EBSMOUNT_OP_DEADLINE_MS (inherited by the daemon).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { runCli } from '../../helpers/cli.js';
import { run, seededBytes } from '../../helpers/images.js';
import { ebsClient, getBlock, listAllBlocks, startServer, type TestServer } from '../../helpers/server.js';
import { Cleanup, changedBlocks, isolateState, mountCli, printedId, tempDir, waitFor } from './harness.js';

const DEADLINE_MS = 1_500;
const LATENCY_MS = 4_000;
const BLOCKS = 16;

interface Status {
  pid: number;
  dirtyBlocks?: number;
  stats: Record<string, number>;
}

async function status(mountpoint: string): Promise<Status> {
  const r = await runCli(['status', mountpoint, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Status | Status[];
  return Array.isArray(doc) ? doc[0]! : doc;
}

/** dd with O_DIRECT (no page cache between the test and the daemon); resolves with dd's exit code and stderr. */
async function dd(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await run('dd', [...args, 'status=none']);
    return { code: 0, stderr: '' };
  } catch (err) {
    return { code: 1, stderr: (err as Error).message };
  }
}

describe('FUSE op deadline against a server slower than the deadline', { timeout: 240_000 }, () => {
  const cleanup = new Cleanup();
  let server: TestServer;
  let parent: string;
  let image: Buffer;
  const savedDeadline = process.env.EBSMOUNT_OP_DEADLINE_MS;

  before(async () => {
    await isolateState(cleanup);
    server = await startServer();
    cleanup.add('server', () => server.stop());
    const work = await tempDir(cleanup, 'ebsmount-deadline-');
    image = seededBytes(11, 'deadline', BLOCKS * BLOCK_SIZE);
    await writeFile(join(work, 'img'), image);
    const r = await runCli(['import', join(work, 'img'), '--endpoint', server.endpoint]);
    assert.equal(r.code, 0, r.stderr);
    parent = r.stdout.trim();
    await server.restart(['--latency-ms', String(LATENCY_MS)]);
    process.env.EBSMOUNT_OP_DEADLINE_MS = String(DEADLINE_MS);
  });
  after(async () => {
    if (savedDeadline === undefined) delete process.env.EBSMOUNT_OP_DEADLINE_MS;
    else process.env.EBSMOUNT_OP_DEADLINE_MS = savedDeadline;
    await cleanup.run();
  });

  test('EIO at the deadline, daemon up, later reads right, the journal holds only acknowledged writes', async () => {
    const m = await mountCli(cleanup, server.endpoint, parent, ['--writable']);
    const img = m.imagePath;
    const before = await status(m.mountpoint);

    // A read of a block nobody fetched yet: the server answers after the deadline.
    const readBlock2 = ['if=' + img, 'of=/dev/null', 'bs=4096', 'count=1', `skip=${(2 * BLOCK_SIZE) / 4096 + 1}`, 'iflag=direct'];
    const r1 = await dd(readBlock2);
    assert.notEqual(r1.code, 0, 'the read finished although the server is slower than the deadline');
    assert.match(r1.stderr, /Input\/output error/);

    // A 4 KiB write inside block 4 needs the parent's block (read-modify-write): past the deadline.
    const scratch = await tempDir(cleanup, 'ebsmount-deadline-data-');
    const small = join(scratch, 'small');
    await writeFile(small, Buffer.alloc(4096, 0x5a));
    const w1 = await dd(['if=' + small, 'of=' + img, 'bs=4096', 'count=1', `seek=${(4 * BLOCK_SIZE) / 4096 + 2}`, 'oflag=direct', 'conv=notrunc']);
    assert.notEqual(w1.code, 0, 'the write needing the parent finished although the server is slower than the deadline');
    assert.match(w1.stderr, /Input\/output error/);

    // A whole-block write needs nothing from the server: acknowledged, then fsynced.
    const whole = join(scratch, 'whole');
    const wholeData = seededBytes(12, 'whole', BLOCK_SIZE);
    await writeFile(whole, wholeData);
    const w2 = await dd(['if=' + whole, 'of=' + img, `bs=${BLOCK_SIZE}`, 'count=1', 'seek=6', 'oflag=direct', 'conv=notrunc,fsync']);
    assert.equal(w2.code, 0, w2.stderr);

    // The daemon is up, and the two abandoned fetches land (they fill the cache).
    const fetched = before.stats['blocks.fetched'] ?? 0;
    await waitFor('the abandoned fetches to land', async () => ((await status(m.mountpoint)).stats['blocks.fetched'] ?? 0) >= fetched + 2, 60_000, 250);

    // The same read again: right bytes (from the cache), no error.
    const out = join(scratch, 'out');
    const r2 = await dd(['if=' + img, 'of=' + out, 'bs=4096', 'count=1', `skip=${(2 * BLOCK_SIZE) / 4096 + 1}`, 'iflag=direct']);
    assert.equal(r2.code, 0, r2.stderr);
    const fh = await open(out, 'r');
    const got = Buffer.alloc(4096);
    await fh.read(got, 0, 4096, 0);
    await fh.close();
    assert.ok(got.equals(image.subarray(2 * BLOCK_SIZE + 4096, 2 * BLOCK_SIZE + 8192)), 'the second read returned wrong bytes');

    // Only the acknowledged write is dirty, also once the abandoned write's parent read landed.
    assert.equal((await status(m.mountpoint)).dirtyBlocks, 1);

    // Commit against a fast server: the child differs from the parent in block 6 only.
    await server.restart([]);
    const u = await runCli(['unmount', m.mountpoint], { timeoutMs: 180_000 });
    assert.equal(u.code, 0, u.stderr);
    const child = printedId(u);
    assert.deepEqual(await changedBlocks(server.endpoint, parent, child), [6]);
    const client = ebsClient(server.endpoint);
    try {
      const { blocks } = await listAllBlocks(client, child);
      const b6 = await getBlock(client, child, 6, blocks.get(6)!);
      assert.ok(b6.data.equals(wholeData), 'block 6 of the child is not what was written');
      const b4 = await getBlock(client, child, 4, blocks.get(4)!);
      assert.ok(b4.data.equals(image.subarray(4 * BLOCK_SIZE, 5 * BLOCK_SIZE)), 'block 4 of the child is not the parent\'s');
    } finally {
      client.destroy();
    }
  });
});
