/**
 * `ebsmount serve --data DIR` trusts nothing it did not make: the real CLI against data
 * directories and files that are not the serving user's, are writable by others, are symlinks or
 * are not directories (one line, exit 1); and what it creates is private (0700 / 0600).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../helpers/cli.js';
import { ebsClient, makeSnapshot, startServer } from '../../helpers/server.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ebsmount-datadir-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function refused(dataDir: string, re: RegExp): Promise<void> {
  const r = await runCli(['serve', '--data', dataDir, '--port', '0'], { timeoutMs: 60_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^ebsmount: serve: /);
  assert.match(r.stderr, re);
}

const modeOf = async (p: string) => (await lstat(p)).mode & 0o777;

describe('serve --data: what it refuses', () => {
  test('a regular file, or a path through one', async () => {
    const file = join(root, 'a-file');
    await writeFile(file, 'x');
    await refused(file, /a-file: is a regular file, expected a directory/);
    await refused(join(file, 'sub'), /not a directory/);
  });

  test('a directory writable by others or by its group', async () => {
    const d = join(root, 'open');
    await mkdir(d);
    await chmod(d, 0o777);
    await refused(d, /open: is writable by others \(mode 0777\)/);
    await chmod(d, 0o770);
    await refused(d, /open: is writable by its group \(mode 0770\)/);
  });

  test("a directory owned by another user", { skip: process.getuid!() !== 0 ? 'needs root (chown)' : false }, async () => {
    const d = join(root, 'theirs');
    await mkdir(d, { mode: 0o700 });
    await chown(d, 65534, 65534);
    await refused(d, /theirs: is owned by uid 65534/);
  });

  test('a secret or lock file that is a symlink, or writable by others', async () => {
    const outside = join(root, 'outside');
    await writeFile(outside, Buffer.alloc(32, 7));
    await chmod(outside, 0o600);
    const d1 = join(root, 'secret-link');
    await mkdir(d1, { mode: 0o700 });
    await symlink(outside, join(d1, 'secret'));
    await refused(d1, /secret: is a symbolic link/);
    const d2 = join(root, 'lock-link');
    await mkdir(d2, { mode: 0o700 });
    await symlink(outside, join(d2, 'serve.lock'));
    await refused(d2, /serve\.lock: is a symbolic link/);
    const d3 = join(root, 'secret-open');
    await mkdir(d3, { mode: 0o700 });
    await writeFile(join(d3, 'secret'), Buffer.alloc(32, 7));
    await chmod(join(d3, 'secret'), 0o666);
    await refused(d3, /secret: is writable by others/);
  });
});

describe('serve --data: what it creates is private', () => {
  test('data directory 0700 (a 0755 one is tightened), files 0600, block directories 0700', async () => {
    const d = join(root, 'fresh');
    await mkdir(d);
    await chmod(d, 0o755);
    const server = await startServer({ dataDir: d });
    try {
      const c = ebsClient(server.endpoint);
      await makeSnapshot(c, new Map([[3, Buffer.alloc(524_288, 5)]]));
      c.destroy();
    } finally {
      await server.stop();
    }
    assert.equal(await modeOf(d), 0o700);
    const entries = await readdir(d);
    for (const name of entries) {
      const st = await lstat(join(d, name));
      assert.equal(st.mode & 0o777, st.isDirectory() ? 0o700 : 0o600, `${name} mode ${(st.mode & 0o777).toString(8)}`);
    }
    assert.ok(entries.includes('secret') && entries.includes('serve.lock'), entries.join(','));
    const blocks = join(d, 'blocks');
    const subs = await readdir(blocks);
    assert.equal(subs.length, 1);
    assert.equal(await modeOf(join(blocks, subs[0]!)), 0o700);
    const files = await readdir(join(blocks, subs[0]!));
    assert.equal(files.length, 1);
    assert.equal(await modeOf(join(blocks, subs[0]!, files[0]!)), 0o600);
  });
});
