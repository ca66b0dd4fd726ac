/**
 * A damaged journal through the CLI, against the real local server: `journals` shows it as
 * damaged with the cause, `commit --journal` fails with one line naming the damage (it is found
 * when the block is read for upload, and recorded), `commit --journal --salvage` commits the intact blocks, lists the lost one, and the
 * child keeps the parent's data there (not zeros).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { Journal } from '../../../src/writeback/journal.js';
import { decodeRecord } from '../../../src/writeback/journal-format.js';
import { runCli } from '../../helpers/cli.js';
import { seededBytes } from '../../helpers/images.js';
import { ebsClient, getBlock, listAllBlocks, startServer, type TestServer } from '../../helpers/server.js';
import { Cleanup, changedBlocks, printedId, tempDir } from './harness.js';

describe('damaged journal: refusal and salvage (CLI, real server)', { timeout: 180_000 }, () => {
  const cleanup = new Cleanup();
  let server: TestServer;
  let parent: string;
  let image: Buffer;
  let root: string;
  let dir: string;
  let damagedBlock: number;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    const work = await tempDir(cleanup, 'ebsmount-salvage-');
    image = seededBytes(21, 'salvage', 4 * BLOCK_SIZE);
    await writeFile(join(work, 'img'), image);
    const r = await runCli(['import', join(work, 'img'), '--endpoint', server.endpoint]);
    assert.equal(r.code, 0, r.stderr);
    parent = r.stdout.trim();

    root = join(work, 'journals');
    dir = join(root, 'eeeeeeee-damaged');
    const j = await Journal.create(dir, { journalId: 'eeeeeeee-damaged', parentSnapshotId: parent, volumeSizeGiB: 1, endpoint: server.endpoint });
    await j.writeBlock(1, seededBytes(22, 'one', BLOCK_SIZE));
    await j.writeBlock(2, seededBytes(23, 'two', BLOCK_SIZE));
    await j.close();
    // Rot in the data of the block the first index record names.
    const index = await (await import('node:fs/promises')).readFile(join(dir, 'index.log'));
    const rec = decodeRecord(index, 0)!;
    damagedBlock = rec.blockIndex;
    const fh = await open(join(dir, 'blocks.dat'), 'r+');
    await fh.write(Buffer.from('rot'), 0, 3, rec.slot * BLOCK_SIZE + 4096);
    await fh.close();
  });
  after(() => cleanup.run());

  test('commit refuses; journals shows the damage; --salvage commits the rest and the lost block keeps the parent\'s data', async () => {
    const refused = await runCli(['commit', '--journal', dir]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stdout, '');
    const line = refused.stderr.trim();
    assert.equal(line.split('\n').length, 1, refused.stderr);
    assert.match(line, new RegExp(`^ebsmount: .*block ${damagedBlock} in blocks\\.dat .*does not match its recorded SHA-256.*--salvage`));
    // The damage is found when the block is read for upload; from then on it is recorded.
    assert.match((await Journal.readMeta(dir)).damage ?? '', new RegExp(`block ${damagedBlock}`));

    const listed = JSON.parse((await runCli(['journals', '--root', root, '--json'])).stdout) as { dir: string; state: string; error?: string }[];
    const mine = listed.find((j) => j.dir === dir);
    assert.equal(mine?.state, 'damaged');
    assert.match(mine?.error ?? '', new RegExp(`block ${damagedBlock}`));

    const salvaged = await runCli(['commit', '--journal', dir, '--salvage'], { timeoutMs: 120_000 });
    assert.equal(salvaged.code, 0, salvaged.stderr);
    const child = printedId(salvaged);
    assert.match(salvaged.stderr, new RegExp(`1 block lost, the child keeps the parent's data there: ${damagedBlock}\\b`));
    const intact = damagedBlock === 1 ? 2 : 1;
    assert.deepEqual(await changedBlocks(server.endpoint, parent, child), [intact]);
    const client = ebsClient(server.endpoint);
    try {
      const { blocks } = await listAllBlocks(client, child);
      const lost = await getBlock(client, child, damagedBlock, blocks.get(damagedBlock)!);
      assert.ok(lost.data.equals(image.subarray(damagedBlock * BLOCK_SIZE, (damagedBlock + 1) * BLOCK_SIZE)), 'the lost block is not the parent\'s');
    } finally {
      client.destroy();
    }
  });
});
