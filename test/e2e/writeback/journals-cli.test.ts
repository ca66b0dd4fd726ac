/**
 * The `ebsmount journals` and `ebsmount commit` commands as users run them, on journals made
 * with the Journal API (no mount needed): listing, JSON, --all, registered journals outside the
 * root, and the commit command's answers that need no server.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { Journal } from '../../../src/writeback/journal.js';
import { registerJournal } from '../../../src/writeback/journal-registry.js';
import { runCli } from '../../helpers/cli.js';
import { startServer } from '../../helpers/server.js';
import { holdLock } from '../../helpers/lock-holder.js';
import { LOCK_FILE } from '../../../src/writeback/paths.js';
import { Cleanup, tempDir } from './harness.js';

const PARENT = 'snap-0123456789abcdef0';

describe('ebsmount journals / commit (CLI)', () => {
  const cleanup = new Cleanup();
  let root: string;
  let openDir: string;
  let committedDir: string;
  let outsideDir: string;
  let emptyDir: string;

  before(async () => {
    const base = await tempDir(cleanup, 'ebsmount-wb-cli-');
    root = join(base, 'root');
    await mkdir(root);
    openDir = join(root, 'aaaaaaaa-open');
    const j = await Journal.create(openDir, { journalId: 'aaaaaaaa-open', parentSnapshotId: PARENT, volumeSizeGiB: 1, description: 'open one' });
    await j.writeBlock(1, Buffer.alloc(BLOCK_SIZE, 1));
    await j.writeBlock(2, Buffer.alloc(BLOCK_SIZE, 2));
    await j.close();

    committedDir = join(root, 'bbbbbbbb-done');
    const c = await Journal.create(committedDir, { journalId: 'bbbbbbbb-done', parentSnapshotId: PARENT, volumeSizeGiB: 1 });
    await c.updateMeta({ state: 'committed', childSnapshotId: 'snap-0fedcba9876543210', committedBlocks: 3 });
    await c.close();

    outsideDir = join(base, 'elsewhere', 'j');
    const o = await Journal.create(outsideDir, { journalId: 'cccccccc-out', parentSnapshotId: PARENT, volumeSizeGiB: 1 });
    await o.writeBlock(0, Buffer.alloc(BLOCK_SIZE, 3));
    await o.close();
    await registerJournal(root, 'cccccccc-out', outsideDir);

    emptyDir = join(base, 'empty');
    const e = await Journal.create(emptyDir, { journalId: 'dddddddd-empty', parentSnapshotId: PARENT, volumeSizeGiB: 1 });
    await e.close();

    await mkdir(join(root, 'not-a-journal'));
  });

  after(() => cleanup.run());

  test('journals lists unfinished journals (registered ones included), --all adds committed ones', async () => {
    const r = await runCli(['journals', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ID\s+STATE\s+PARENT/m);
    assert.ok(r.stdout.includes(openDir));
    assert.ok(r.stdout.includes(outsideDir), 'the journal registered from outside the root');
    assert.ok(!r.stdout.includes(committedDir));
    assert.match(r.stdout, /ebsmount commit --journal DIR/);

    const json = await runCli(['journals', '--root', root, '--json']);
    const list = JSON.parse(json.stdout) as { dir: string; state: string; dirtyBlocks: number; parentSnapshotId: string; description?: string }[];
    const open = list.find((j) => j.dir === openDir)!;
    assert.equal(open.state, 'open');
    assert.equal(open.dirtyBlocks, 2);
    assert.equal(open.parentSnapshotId, PARENT);
    assert.equal(open.description, 'open one');
    assert.equal(list.length, 2);

    const all = JSON.parse((await runCli(['journals', '--root', root, '--json', '--all'])).stdout) as { dir: string; state: string }[];
    assert.equal(all.length, 3);
    assert.equal(all.find((j) => j.dir === committedDir)?.state, 'committed');
  });

  test('journals in an empty or missing root says so', async () => {
    const r = await runCli(['journals', '--root', join(root, 'nope')]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /no unfinished journals/);
  });

  test('commit of a committed journal prints its child without any request; of a journal without changes, says so', async () => {
    const r = await runCli(['commit', '--journal', committedDir, '--endpoint', 'http://127.0.0.1:9']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'snap-0fedcba9876543210\n');
    const e = await runCli(['commit', '--journal', emptyDir, '--endpoint', 'http://127.0.0.1:9']);
    assert.equal(e.code, 0, e.stderr);
    assert.equal(e.stdout, '');
    assert.match(e.stderr, /no changes/);
  });

  test('commit refuses bad input with one line', async () => {
    const none = await runCli(['commit']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--journal/);
    const notJournal = await runCli(['commit', '--journal', join(root, 'not-a-journal')]);
    assert.equal(notJournal.code, 2);
    assert.match(notJournal.stderr, /not an ebsmount journal/);
    assert.equal(notJournal.stderr.trim().split('\n').length, 1);
  });

  test('commit refuses a journal that a live process holds; a failed commit keeps the journal and says how to resume', async () => {
    const holder = await holdLock(join(openDir, LOCK_FILE));
    try {
      const busy = await runCli(['commit', '--journal', openDir, '--endpoint', 'http://127.0.0.1:9']);
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, new RegExp(`in use by process ${holder.pid}`));
    } finally {
      await holder.kill9();
    }
    // A server without the parent: StartSnapshot fails (not retried); the journal is kept.
    const server = await startServer();
    try {
      const failed = await runCli(['commit', '--journal', openDir, '--endpoint', server.endpoint], { timeoutMs: 60_000 });
      assert.equal(failed.code, 1);
      assert.match(failed.stderr, new RegExp(`parent snapshot ${PARENT} not found`));
      assert.match(failed.stderr, /resume with: ebsmount commit --journal /);
      assert.equal(failed.stderr.trim().split('\n').length, 1);
    } finally {
      await server.stop();
    }
    const meta = await Journal.readMeta(openDir);
    assert.equal(meta.state, 'committing', 'the journal is kept');
  });
});
