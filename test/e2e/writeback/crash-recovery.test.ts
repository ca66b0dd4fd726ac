/**
 * End-to-end crash safety of writable mounts (real FUSE, real server, kill -9):
 * - kill -9 of the mount daemon after fsync: `ebsmount commit --journal DIR` makes a child that
 *   holds every fsynced write; `journals` lists the journal until then; running commit again
 *   prints the same id and creates nothing.
 * - with server faults (throttling, 5xx, the "does not exist" window): an unmount commit still
 *   succeeds; kill -9 during the commit, then `commit --journal`: exactly one child, right data.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { runCli } from '../../helpers/cli.js';
import { prng, seededBytes } from '../../helpers/images.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import {
  Cleanup, childrenOf, daemonPid, isMounted, isolateState, kill9, mountCli, printedId, tempDir, umountQuiet, waitFor,
} from './harness.js';

interface JournalListing {
  dir: string;
  state: string;
  dirtyBlocks: number;
  parentSnapshotId: string;
  childSnapshotId: string | null;
  inUseBy?: number;
}

async function listJournals(all = false): Promise<JournalListing[]> {
  const r = await runCli(['journals', '--json', ...(all ? ['--all'] : [])]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as JournalListing[];
}

async function readMeta(dir: string): Promise<{ state: string; childSnapshotId?: string | null } | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as { state: string; childSnapshotId?: string | null };
  } catch {
    return undefined;
  }
}

async function putsInto(server: TestServer, snapshotId: string): Promise<number> {
  const text = await readFile(join(server.dataDir, 'metadata.log'), 'utf8');
  let n = 0;
  for (const line of text.split('\n')) if (line.includes('"t":"put"') && line.includes(`"id":"${snapshotId}"`)) n++;
  return n;
}

async function readRegion(path: string, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, 0);
    assert.equal(bytesRead, length);
    return buf;
  } finally {
    await fh.close();
  }
}

describe('writable mount crash safety (e2e)', { timeout: 175_000 }, () => {
  const cleanup = new Cleanup();
  let work: string;

  before(async () => {
    await isolateState(cleanup);
    work = await tempDir(cleanup, 'ebsmount-wb-crash-');
  });

  after(async () => {
    await cleanup.run();
  });

  async function importBytes(server: TestServer, name: string, bytes: Buffer): Promise<string> {
    const img = join(work, name);
    await writeFile(img, bytes);
    const r = await runCli(['import', img, '--endpoint', server.endpoint], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    return printedId(r);
  }

  test('kill -9 after fsync: commit --journal makes the child with every fsynced write; a second commit creates nothing', async () => {
    const server = await startServer();
    cleanup.add('stop server', () => server.stop());
    const parentBytes = seededBytes(3, 'crash-parent', 12 * BLOCK_SIZE);
    const parentId = await importBytes(server, 'crash.img', parentBytes);
    const journalDir = join(work, 'journal-a');

    const m = await mountCli(cleanup, server.endpoint, parentId, ['--writable', '--journal-dir', journalDir]);
    const model = Buffer.concat([parentBytes, Buffer.alloc(4 * BLOCK_SIZE)]);
    const fh = await open(m.imagePath, 'r+');
    const put = async (position: number, data: Buffer): Promise<void> => {
      const { bytesWritten } = await fh.write(data, 0, data.length, position);
      assert.equal(bytesWritten, data.length);
    };
    const durable: [number, Buffer][] = [
      [BLOCK_SIZE + 100, seededBytes(3, 'a1', 200 * 1024)],
      [5 * BLOCK_SIZE - 1000, seededBytes(3, 'a2', 3000)], // crosses blocks 4 and 5
      [8 * BLOCK_SIZE, seededBytes(3, 'a3', BLOCK_SIZE)],
      [13 * BLOCK_SIZE + 7, seededBytes(3, 'a4', 999)], // past the parent's data
      [2 * BLOCK_SIZE, Buffer.alloc(BLOCK_SIZE)], // zeros over parent data
    ];
    for (const [pos, data] of durable) {
      await put(pos, data);
      data.copy(model, pos);
    }
    await fh.sync();
    await put(10 * BLOCK_SIZE + 5, seededBytes(3, 'not-synced', 1000)); // may or may not survive
    const pid = await daemonPid(m.mountpoint);
    await kill9(pid);
    await fh.close().catch(() => undefined);
    await umountQuiet(m.mountpoint);
    assert.equal(await isMounted(m.mountpoint), false);

    const listed = (await listJournals()).find((j) => j.dir === journalDir);
    assert.ok(listed, '`ebsmount journals` lists the unfinished journal');
    assert.equal(listed.state, 'open');
    assert.equal(listed.parentSnapshotId, parentId);
    assert.ok(listed.dirtyBlocks >= 6, `dirty blocks: ${listed.dirtyBlocks}`);
    assert.equal(listed.inUseBy, undefined, 'its daemon is gone');

    const r = await runCli(['commit', '--journal', journalDir, '--endpoint', server.endpoint], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const childId = printedId(r);
    assert.deepEqual(await childrenOf(server.dataDir, parentId), [childId]);

    const child = await mountCli(cleanup, server.endpoint, childId);
    const got = await readRegion(child.imagePath, model.length);
    for (const [pos, data] of durable) {
      assert.ok(got.subarray(pos, pos + data.length).equals(data), `fsynced write at ${pos} is in the child`);
    }
    assert.ok(got.subarray(0, BLOCK_SIZE).equals(model.subarray(0, BLOCK_SIZE)), 'untouched block 0 is the parent\'s');
    const un = await runCli(['unmount', child.mountpoint]);
    assert.equal(un.code, 0, un.stderr);

    // Again (no endpoint needed: the journal knows it is committed): same id, nothing new.
    const again = await runCli(['commit', '--journal', journalDir]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(printedId(again), childId);
    assert.deepEqual(await childrenOf(server.dataDir, parentId), [childId], 'no second child');
    assert.equal((await listJournals()).find((j) => j.dir === journalDir), undefined, 'no longer listed as unfinished');
    const all = (await listJournals(true)).find((j) => j.dir === journalDir);
    assert.equal(all?.state, 'committed');
    assert.equal(all?.childSnapshotId, childId);
  });

  describe('with server faults: throttling, 500s, "does not exist" for 2 s after start', () => {
    let server: TestServer;
    let parentId: string;
    const parentBytes = seededBytes(8, 'fault-parent', 40 * BLOCK_SIZE);

    before(async () => {
      server = await startServer({
        args: ['--throttle-rate', '0.1', '--error-rate', '0.05', '--missing-after-start-ms', '2000', '--latency-ms', '5'],
      });
      cleanup.add('stop fault server', () => server.stop());
      parentId = await importBytes(server, 'faults.img', parentBytes);
    });

    /** Partial writes into blocks [first, first+count): returns the expected volume prefix. */
    async function writeBlocks(imagePath: string, first: number, count: number, seed: number): Promise<Buffer> {
      const model = Buffer.concat([parentBytes, Buffer.alloc(40 * BLOCK_SIZE)]);
      const fh = await open(imagePath, 'r+');
      try {
        const rand = prng(seed);
        for (let i = first; i < first + count; i++) {
          const length = 1000 + Math.floor(rand() * 400_000);
          const pos = i * BLOCK_SIZE + Math.floor(rand() * (BLOCK_SIZE - length));
          const data = seededBytes(seed, `b${i}`, length);
          await fh.write(data, 0, length, pos);
          data.copy(model, pos);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      return model;
    }

    test('an unmount commit succeeds despite the faults', async () => {
      const m = await mountCli(cleanup, server.endpoint, parentId, ['--writable']);
      const model = await writeBlocks(m.imagePath, 4, 24, 11);
      const r = await runCli(['unmount', m.mountpoint], { timeoutMs: 150_000 });
      assert.equal(r.code, 0, r.stderr);
      const childId = printedId(r);
      const child = await mountCli(cleanup, server.endpoint, childId);
      assert.ok((await readRegion(child.imagePath, model.length)).equals(model), 'the child holds the writes');
      await runCli(['unmount', child.mountpoint]);
    });

    test('kill -9 during the commit, then commit --journal: exactly one child, with the right data', async () => {
      const journalDir = join(work, 'journal-b');
      const m = await mountCli(cleanup, server.endpoint, parentId, ['--writable', '--journal-dir', journalDir, '--upload-concurrency', '2']);
      const model = await writeBlocks(m.imagePath, 0, 60, 12);
      const pid = await daemonPid(m.mountpoint);
      const unmounting = runCli(['unmount', m.mountpoint], { timeoutMs: 150_000 });

      const childId = await waitFor('the commit to start', async () => {
        const meta = await readMeta(journalDir);
        return meta?.state === 'committing' && meta.childSnapshotId ? meta.childSnapshotId : undefined;
      }, 60_000);
      await waitFor('some blocks to be uploaded', async () => (await putsInto(server, childId)) >= 6, 60_000, 20);
      await kill9(pid);
      const interrupted = await unmounting;
      assert.notEqual(interrupted.code, 0, 'the interrupted unmount did not report success');
      assert.ok((await putsInto(server, childId)) < 60, 'killed before every block was uploaded');
      await umountQuiet(m.mountpoint);

      const listed = (await listJournals()).find((j) => j.dir === journalDir);
      assert.equal(listed?.state, 'committing');

      const r = await runCli(['commit', '--journal', journalDir, '--endpoint', server.endpoint], { timeoutMs: 150_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(printedId(r), childId, 'the resumed commit finished the same child (ClientToken)');
      const children = await childrenOf(server.dataDir, parentId);
      assert.equal(children.filter((id) => id === childId).length, 1);
      assert.equal(children.length, 2, 'one child from the earlier test, one from this one');

      const child = await mountCli(cleanup, server.endpoint, childId);
      assert.ok((await readRegion(child.imagePath, model.length)).equals(model), 'the child holds every write');
      await runCli(['unmount', child.mountpoint]);
    });
  });
});
