/**
 * A writable mount whose journal sits on a nearly full filesystem (a 3 MiB tmpfs), end to end:
 * the mount warns; a write that meets ENOSPC fails in the writing program (dd), the daemon logs
 * one clear line and `ebsmount status` shows DISK FULL; the daemon stays up; the commit at unmount
 * fails with one line keeping the journal (blocks still in memory cannot be stored), and once
 * there is room `commit --journal` makes a child holding every fsync-acknowledged write.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { runCli } from '../../helpers/cli.js';
import { run, seededBytes } from '../../helpers/images.js';
import { ebsClient, getBlock, listAllBlocks, startServer, type TestServer } from '../../helpers/server.js';
import { Cleanup, changedBlocks, isolateState, mountCli, printedId, tempDir, umountQuiet } from './harness.js';

describe('journal on a full disk (e2e)', { timeout: 240_000 }, () => {
  const cleanup = new Cleanup();
  let server: TestServer;
  let parent: string;
  let small: string;

  before(async () => {
    await isolateState(cleanup);
    server = await startServer();
    cleanup.add('server', () => server.stop());
    const work = await tempDir(cleanup, 'ebsmount-full-');
    await writeFile(join(work, 'img'), seededBytes(31, 'full', 8 * BLOCK_SIZE));
    const r = await runCli(['import', join(work, 'img'), '--endpoint', server.endpoint]);
    assert.equal(r.code, 0, r.stderr);
    parent = r.stdout.trim();
    small = await tempDir(cleanup, 'ebsmount-full-fs-');
    await run('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0700', 'tmpfs', small]);
    cleanup.add(`umount ${small}`, () => umountQuiet(small));
  });
  after(() => cleanup.run());

  test('warns at mount; ENOSPC reaches the writer, the log and status; acknowledged writes are committed', async () => {
    const m = await mountCli(cleanup, server.endpoint, parent, ['--writable', '--journal-dir', join(small, 'j')]);
    assert.match(m.result.stderr, /^ebsmount: warning: only .* free for the journal in .*: writes beyond that fail with ENOSPC/m);
    const logFile = /\(log: ([^)]+)\)/.exec(m.result.stdout)?.[1];
    assert.ok(logFile, m.result.stdout);

    const data = join(await tempDir(cleanup, 'ebsmount-full-data-'), 'data');
    const first = seededBytes(32, 'first', BLOCK_SIZE);
    await writeFile(data, Buffer.concat([first, seededBytes(33, 'more', 7 * BLOCK_SIZE)]));
    // One block, fsynced: acknowledged and durable.
    await run('dd', [`if=${data}`, `of=${m.imagePath}`, `bs=${BLOCK_SIZE}`, 'count=1', 'oflag=direct', 'conv=notrunc,fsync', 'status=none']);
    // Seven more do not fit in the journal's 3 MiB.
    const full = await run('dd', [`if=${data}`, `of=${m.imagePath}`, `bs=${BLOCK_SIZE}`, 'skip=1', 'seek=1', 'count=7', 'oflag=direct', 'conv=notrunc,fsync', 'status=none'])
      .then(() => '', (err: Error) => err.message);
    assert.match(full, /No space left on device/, 'the writer was not told the disk is full');

    const st = await runCli(['status', m.mountpoint, '--json']);
    assert.equal(st.code, 0, st.stderr);
    const doc = JSON.parse(st.stdout) as { journal?: { diskFullErrors: number; lastDiskFull: { message: string } | null } };
    assert.ok((doc.journal?.diskFullErrors ?? 0) > 0, st.stdout);
    const text = await runCli(['status', m.mountpoint]);
    assert.match(text.stdout, /DISK FULL: \d+ write\(s\) refused with ENOSPC/);
    assert.match(await readFile(logFile!, 'utf8'), /journal's disk is full \(ENOSPC\)/);

    // The daemon is up. The unmount's commit cannot store the blocks still assembling in memory
    // (the disk is full): it fails with one line, keeping the journal; with room again, the
    // resumed commit holds what was made durable (block 0, exactly as written).
    const u = await runCli(['unmount', m.mountpoint], { timeoutMs: 180_000 });
    let child: string;
    if (u.code === 0) child = printedId(u);
    else {
      assert.match(u.stderr, /disk is full.*resume with: ebsmount commit --journal /);
      await run('mount', ['-o', 'remount,size=32m', small]);
      const c = await runCli(['commit', '--journal', join(small, 'j')], { timeoutMs: 180_000 });
      assert.equal(c.code, 0, c.stderr);
      child = printedId(c);
    }
    const changed = await changedBlocks(server.endpoint, parent, child);
    assert.ok(changed.includes(0), `block 0 missing from the child (changed: ${changed.join(',')})`);
    assert.ok(changed.every((i) => i < 8));
    const client = ebsClient(server.endpoint);
    try {
      const { blocks } = await listAllBlocks(client, child);
      assert.ok((await getBlock(client, child, 0, blocks.get(0)!)).data.equals(first));
    } finally {
      client.destroy();
    }
  });
});
