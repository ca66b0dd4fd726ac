/**
 * Power loss and file-layer faults under the journal (PowerLossFs: only what was fdatasync'ed
 * survives, plus torn unsynced writes):
 * - a random workload of block writes (data, zeros, in-place rewrites) and flushes, with the index
 *   compacted often, is cut at every file operation in turn; after the crash the journal opens
 *   (a power cut is never "damage"), every block whose flush was acknowledged holds its
 *   acknowledged content (or that of the flush in progress at the cut), nothing else is there,
 *   and every block read back verifies (nothing torn is served); the journal then takes more
 *   writes and replays them.
 * - compaction failing in its rename, directory fsync or handle switch poisons the journal: no
 *   later write is acknowledged, and a reopen finds every acknowledged write.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sha256Base64 } from '../../../src/ebs/checksum.js';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { Journal, type JournalOpenOptions } from '../../../src/writeback/journal.js';
import { PARENT_ID, patternBlock, prng } from './fixtures.js';
import { PowerLossFs } from './power-loss-fs.js';

const DIR = '/pl/j';
/** Blocks the workload writes to (the replay check writes one past them). */
const BLOCKS = 24;
const init = { journalId: 'pl', parentSnapshotId: PARENT_ID, volumeSizeGiB: 1 };

const patterns = new Map<number, Buffer>();
function pattern(seed: number): Buffer {
  let b = patterns.get(seed);
  if (!b) patterns.set(seed, (b = patternBlock(seed)));
  return b;
}

/** A block's content in the model: its SHA-256 (zeros included). */
const key = (b: Buffer): string => sha256Base64(b);

interface Model {
  /** What the last acknowledged flush made durable. */
  acked: Map<number, string>;
  /** What a flush in progress at the cut would make durable. */
  inFlight: Map<number, string> | undefined;
}

/** Runs the workload until it ends or the power goes; returns what was acknowledged. */
async function workload(
  fs: PowerLossFs, seed: number, steps: number, opts: JournalOpenOptions, shape: { flushP: number; blocks: number },
): Promise<Model> {
  const rand = prng(seed);
  const model: Model = { acked: new Map(), inFlight: undefined };
  const current = new Map<number, Buffer>();
  const flush = async (j: Journal) => {
    model.inFlight = new Map([...current].map(([i, b]) => [i, key(b)]));
    await j.flush();
    model.acked = model.inFlight;
    model.inFlight = undefined;
  };
  try {
    const j = await Journal.create(DIR, init, { ...opts, fs });
    for (let s = 0; s < steps; s++) {
      const r = rand();
      if (r < shape.flushP) {
        await flush(j);
        continue;
      }
      const index = Math.floor(rand() * shape.blocks);
      const prev = current.get(index);
      let block: Buffer;
      let changed: { offset: number; length: number } | undefined;
      if (r < shape.flushP + 0.07) block = Buffer.alloc(BLOCK_SIZE);
      else if (r < shape.flushP + 0.25 && prev) {
        // Only a range changed: the journal may rewrite just that range of a fresh slot.
        const offset = 4096 * Math.floor(rand() * 127);
        block = Buffer.from(prev);
        pattern(1 + Math.floor(rand() * 50)).copy(block, offset, 0, 8192);
        changed = { offset, length: 8192 };
      } else block = pattern(1 + Math.floor(rand() * 50));
      await j.writeBlock(index, block, changed);
      current.set(index, block);
    }
    await flush(j);
  } catch {
    // power lost (or poisoned by it): stop like a dead process
  }
  return model;
}

async function checkReplay(fs: PowerLossFs, model: Model, label: string): Promise<void> {
  const j = await Journal.open(DIR, { fs }).catch((err: unknown) => {
    throw new Error(`${label}: the journal did not open after a power cut: ${(err as Error).message}`);
  });
  const indexes = new Set([...model.acked.keys(), ...(model.inFlight?.keys() ?? [])]);
  for (const i of j.dirtyIndexes()) assert.ok(indexes.has(i), `${label}: block ${i} was never written before the cut`);
  for (const i of indexes) {
    const allowed = new Set<string>();
    if (model.acked.has(i)) allowed.add(model.acked.get(i)!);
    if (model.inFlight?.has(i)) allowed.add(model.inFlight.get(i)!);
    if (!j.has(i)) {
      assert.ok(!model.acked.has(i), `${label}: acknowledged block ${i} is missing`);
      continue;
    }
    const data = await j.readBlock(i); // verifies the SHA-256: a torn block throws
    assert.ok(allowed.has(key(data ?? Buffer.alloc(BLOCK_SIZE))), `${label}: block ${i} holds content that was never acknowledged nor in flight`);
  }
  // Appends after the replay land where the next replay finds them.
  await j.writeBlock(BLOCKS + 1, pattern(4242));
  await j.flush();
  await j.abandon();
  const again = await Journal.open(DIR, { fs });
  assert.ok((await again.readBlock(BLOCKS + 1))!.equals(pattern(4242)), `${label}: a write after the replay was lost`);
  await again.abandon();
}

describe('journal under power loss', () => {
  // Small batches with frequent compaction, and batches of many blocks (their records span sectors).
  const cases = [
    { seed: 1, flushP: 0.25, blocks: 12 },
    { seed: 2, flushP: 0.25, blocks: 12 },
    { seed: 3, flushP: 0.25, blocks: 12 },
    { seed: 4, flushP: 0.04, blocks: 24 },
  ];
  for (const { seed, ...shape } of cases) {
    test(`seed ${seed} (flush ${shape.flushP * 100} % of steps): cut at every file operation, crash, replay`, async () => {
      const opts = { compactThreshold: 6 };
      const steps = seed === 4 ? 40 : 24;
      const full = new PowerLossFs();
      await workload(full, seed, steps, opts, shape);
      const total = full.opCount;
      assert.ok(total > 50, `only ${total} operations`);
      for (let cut = 1; cut <= total; cut++) {
        const fs = new PowerLossFs();
        fs.cutAfter(cut);
        const model = await workload(fs, seed, steps, opts, shape);
        if (!fs.powerLost) continue;
        const after = fs.crash(prng(seed * 1000 + cut));
        if (!(await after.exists(`${DIR}/meta.json`))) {
          assert.equal(model.acked.size, 0, `cut ${cut}: journal gone but writes were acknowledged`);
          continue;
        }
        await checkReplay(after, model, `seed ${seed} cut ${cut}/${total}`);
      }
    });
  }
});

describe('compaction failures poison the journal', () => {
  for (const failing of ['rename', 'fsyncDir', 'close'] as const) {
    test(`a failed ${failing} during compaction: no later write is acknowledged; a reopen has every acknowledged one`, async () => {
      const fs = new PowerLossFs();
      const j = await Journal.create(DIR, init, { fs, compactThreshold: 4 });
      const acked = new Map<number, number>();
      // Writes until the index needs compacting; the compaction's step fails once.
      let armed = true;
      fs.fault((op, path) => {
        if (!armed || op !== failing) return undefined;
        if (failing === 'rename' && !path.endsWith('/index.log')) return undefined;
        if (failing === 'close' && !path.endsWith('/index.log')) return undefined;
        armed = false;
        return Object.assign(new Error(`injected ${failing} failure`), { code: 'EIO' });
      });
      for (let v = 1; v <= 12 && armed; v++) {
        await j.writeBlock(v % 3, pattern(v));
        await j.flush(); // durable even when its compaction fails (the failure is only logged)
        acked.set(v % 3, v);
      }
      assert.equal(armed, false, 'the compaction never ran');
      // Nothing later may be acknowledged: it could go to an index that is no longer index.log.
      await assert.rejects(async () => {
        await j.writeBlock(7, pattern(99));
        await j.flush();
      }, /compaction/);
      await j.abandon();
      fs.fault(undefined);
      const after = fs.crash(prng(7));
      const r = await Journal.open(DIR, { fs: after });
      for (const [i, v] of acked) assert.ok((await r.readBlock(i))!.equals(pattern(v)), `acknowledged block ${i} lost`);
      assert.equal(r.has(7), false);
      await r.abandon();
    });
  }
});
