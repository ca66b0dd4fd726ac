/**
 * A full journal disk (ENOSPC from the file layer): the write or flush that hits it gets
 * IoError ENOSPC — never an acknowledgement — it is counted (`writeback.disk.full`, shown by
 * `ebsmount status`) and logged as one clear line, and every acknowledged write survives a reopen.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { VolumeFile } from '../../../src/fs/volume-file.js';
import type { Logger } from '../../../src/util/log.js';
import { Stats } from '../../../src/util/stats.js';
import { Journal } from '../../../src/writeback/journal.js';
import { OverlayStore, WritebackStat } from '../../../src/writeback/overlay-store.js';
import { CountingReader, PARENT_ID, patternBlock } from './fixtures.js';
import { PowerLossFs } from './power-loss-fs.js';

const DIR = '/df/j';
const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = { error: (_o: unknown, msg: string) => lines.push(msg), warn() {}, info() {}, debug() {} } as unknown as Logger;
  return { logger, lines };
}

describe('journal disk full', () => {
  for (const where of ['blocks.dat', 'index.log'] as const) {
    test(`ENOSPC writing ${where}: the write gets ENOSPC, is counted and logged; acknowledged writes survive`, async () => {
      const fs = new PowerLossFs();
      const journal = await Journal.create(DIR, { journalId: 'df', parentSnapshotId: PARENT_ID, volumeSizeGiB: 1 }, { fs });
      const stats = new Stats();
      const { logger, lines } = capture();
      const overlay = new OverlayStore({ journal, lower: new CountingReader(), stats, logger });
      const file = new VolumeFile({ sizeBytes: 1024 ** 3, reader: overlay, writer: overlay, stats, allocatedBlocks: () => 0 });
      assert.equal(await file.write(patternBlock(1), BLOCK_SIZE, 0), BLOCK_SIZE);
      await file.flush(); // acknowledged

      fs.fault((op, path) => (op === 'write' && path.endsWith(where) ? enospc() : undefined));
      const refused = async () => {
        await file.write(patternBlock(2), BLOCK_SIZE, BLOCK_SIZE);
        await file.flush();
      };
      await assert.rejects(refused, (e: unknown) => (e as { code?: string }).code === 'ENOSPC');
      assert.ok(stats.get(WritebackStat.diskFull) >= 1, 'not counted');
      assert.match(overlay.lastDiskFull?.message ?? '', /disk is full/);
      assert.equal(lines.length, 1, 'logged once (rate-limited)');
      assert.match(lines[0]!, /journal's disk is full \(ENOSPC\).*nothing acknowledged is lost/);
      // Still full: refused again, not logged again within 30 s.
      await assert.rejects(refused, (e: unknown) => (e as { code?: string }).code === 'ENOSPC');
      assert.equal(lines.length, 1);

      fs.fault(undefined);
      await journal.abandon();
      const after = await Journal.open(DIR, { fs: fs.crash(() => 0.5) });
      assert.ok((await after.readBlock(0))!.equals(patternBlock(1)), 'an acknowledged write was lost');
      await after.abandon();
    });
  }
});
