/**
 * The small pieces under import/export: runWorkers (serialised next, bound, first error wins),
 * paging (short/empty pages, retries, page-token restart, ascending unique), the token refresher,
 * the upload queue's complete-after-lost-answer rule, and the progress bar (silent off a TTY).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { BlockPage, EbsApi, ListPageOptions } from '../../../src/ebs/api.js';
import { EbsError, Reason } from '../../../src/ebs/errors.js';
import { MemoryEbsApi } from '../../../src/ebs/memory-api.js';
import { listAllBlocks, snapshotBlockPages } from '../../../src/ebs/paging.js';
import { runWorkers } from '../../../src/transfer/worker-pool.js';
import { ListingTokenRefresher } from '../../../src/transfer/block-fetch.js';
import { BlockUploader } from '../../../src/transfer/upload-queue.js';
import { ProgressBar, formatBytes, formatDuration } from '../../../src/util/progress.js';
import { FAST, filled, noSleep } from './helpers.js';

test('runWorkers: bounded, next() serialised, every item done', async () => {
  let i = 0;
  let inNext = 0;
  let cur = 0;
  let max = 0;
  const done: number[] = [];
  await runWorkers<number>({
    concurrency: 3,
    next: async () => {
      inNext++;
      assert.equal(inNext, 1, 'next() never runs twice at once');
      await new Promise((r) => setTimeout(r, 1));
      inNext--;
      return i < 20 ? i++ : undefined;
    },
    work: async (item) => {
      cur++;
      max = Math.max(max, cur);
      await new Promise((r) => setTimeout(r, 3));
      done.push(item);
      cur--;
    },
  });
  assert.equal(done.length, 20);
  assert.deepEqual([...done].sort((a, b) => a - b), Array.from({ length: 20 }, (_, k) => k));
  assert.ok(max <= 3 && max >= 2);
});

test('runWorkers: the first error stops new work and is the one thrown', async () => {
  let started = 0;
  let i = 0;
  const err = new Error('first');
  await assert.rejects(runWorkers<number>({
    concurrency: 2,
    next: async () => (i < 100 ? i++ : undefined),
    work: async (item, signal) => {
      started++;
      if (item === 3) throw err;
      await new Promise((r) => setTimeout(r, 2));
      if (signal.aborted && item > 10) throw new Error('later');
    },
  }), (e) => e === err);
  assert.ok(started < 20, `stopped early (${started} started)`);
});

/** A scripted listing: pages by call number, with optional failures. */
function scripted(pages: (BlockPage | EbsError)[]): { api: EbsApi; calls: ListPageOptions[] } {
  const calls: ListPageOptions[] = [];
  const api = {
    listSnapshotBlocks: async (_id: string, o: ListPageOptions = {}) => {
      calls.push(o);
      const p = pages.shift();
      if (!p) throw new Error('no more pages scripted');
      if (p instanceof EbsError) throw p;
      return p;
    },
  } as unknown as EbsApi;
  return { api, calls };
}

const page = (idx: number[], nextToken?: string): BlockPage => ({
  blocks: idx.map((index) => ({ index, token: `t${index}` })), nextToken, volumeSizeGiB: 1, blockSize: 524288,
});

test('paging: empty and short pages with a NextToken are followed; throttling retried', async () => {
  const { api, calls } = scripted([
    page([1, 2], 'a'),
    page([], 'b'),
    new EbsError('RequestThrottledException', 'slow', { status: 400 }),
    page([7], 'c'),
    page([9]),
  ]);
  const r = await listAllBlocks(api, 'snap-00000000000000001', { policy: FAST, sleep: noSleep });
  assert.deepEqual(r.blocks.map((b) => b.index), [1, 2, 7, 9]);
  assert.deepEqual(calls.map((c) => c.nextToken), [undefined, 'a', 'b', 'b', 'c']);
});

test('paging: an invalid page token restarts after the last index yielded, without duplicates', async () => {
  const { api, calls } = scripted([
    page([1, 2, 3], 'a'),
    new EbsError('ValidationException', 'bad token', { status: 400, reason: Reason.INVALID_PAGE_TOKEN }),
    page([2, 3, 4, 5]),
  ]);
  const seen: number[] = [];
  for await (const p of snapshotBlockPages(api, 'snap-00000000000000001', { policy: FAST, sleep: noSleep })) seen.push(...p.blocks.map((b) => b.index));
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  assert.equal(calls[2]!.nextToken, undefined);
  assert.equal(calls[2]!.startingBlockIndex, 4);
});

test('paging: fatal errors reject at once', async () => {
  const { api, calls } = scripted([new EbsError('AccessDeniedException', 'no', { status: 403 })]);
  await assert.rejects(listAllBlocks(api, 'snap-00000000000000001', { policy: FAST, sleep: noSleep }), (e) => e instanceof EbsError && e.type === 'AccessDeniedException');
  assert.equal(calls.length, 1);
});

test('ListingTokenRefresher: one re-list serves many blocks; a vanished block is not found', async () => {
  const mem = new MemoryEbsApi();
  const id = mem.createCompletedSnapshot(new Map([[0, filled(1)], [1, filled(2)], [2, filled(3)]]), 1);
  const first = await mem.listSnapshotBlocks(id);
  mem.expireTokens();
  const r = new ListingTokenRefresher(mem, id, { policy: FAST, sleep: noSleep });
  const t0 = await r.refresh(0, first.blocks[0]!.token);
  const t2 = await r.refresh(2, first.blocks[2]!.token);
  assert.notEqual(t0, first.blocks[0]!.token);
  assert.equal(r.listCalls, 1);
  assert.ok((await mem.getSnapshotBlock(id, 2, t2)).data.equals(filled(3)));
  await assert.rejects(r.refresh(5, 'stale'), (e) => e instanceof EbsError && e.type === 'ResourceNotFoundException');
});

test('BlockUploader: a retried CompleteSnapshot whose first answer was lost still reports completed', async () => {
  const mem = new MemoryEbsApi();
  const s = await mem.startSnapshot({ volumeSizeGiB: 1 });
  const up = new BlockUploader({ api: mem, snapshotId: s.snapshotId, policy: FAST, sleep: noSleep });
  await up.put(0, filled(1));
  await up.put(0, filled(1));
  assert.equal(up.count, 1, 'the same index twice counts once');
  // The first complete takes effect, but its answer is "lost" (a 500 after the fact).
  const api = new Proxy(mem, {
    get(target, prop, recv) {
      if (prop === 'completeSnapshot') {
        let first = true;
        return async (...a: Parameters<EbsApi['completeSnapshot']>) => {
          const r = await target.completeSnapshot(...a);
          if (first) {
            first = false;
            throw new EbsError('InternalServerException', 'lost answer', { status: 500 });
          }
          return r;
        };
      }
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const up2 = new BlockUploader({ api, snapshotId: s.snapshotId, policy: FAST, sleep: noSleep });
  await up2.put(0, filled(1));
  assert.equal(await up2.complete(), 'completed');
  assert.equal(mem.statusOf(s.snapshotId), 'completed');
});

class Sink extends Writable {
  text = '';
  isTTY = false;
  columns = 100;
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

test('progress bar: nothing off a TTY; on a TTY, percent, bytes, rate and ETA', () => {
  const quiet = new Sink();
  const q = new ProgressBar({ label: 'import', totalBytes: 100, stream: quiet as unknown as NodeJS.WriteStream });
  q.update(50);
  q.finish();
  assert.equal(quiet.text, '');

  const tty = new Sink();
  tty.isTTY = true;
  let now = 0;
  const bar = new ProgressBar({ label: 'import', totalBytes: 10 * 1024 * 1024, stream: tty as unknown as NodeJS.WriteStream, now: () => now });
  now = 1000;
  bar.update(5 * 1024 * 1024, { blocks: 10 });
  assert.match(tty.text, /import \[#+-+\]\s+50%\s+5\.00 MiB\/10\.0 MiB\s+10 blocks\s+5\.00 MiB\/s\s+ETA 00:01/);
  now = 1050;
  const before = tty.text;
  bar.update(6 * 1024 * 1024);
  assert.equal(tty.text, before, 'redraws are rate-limited');
  now = 2000;
  bar.finish();
  assert.match(tty.text, /100%.*in 00:02\x1b\[K\n$/);
  assert.ok(tty.text.split('\r').every((l) => l.length <= 110));
});

test('formatBytes / formatDuration', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(3 * 1024 ** 3), '3.00 GiB');
  assert.equal(formatDuration(75), '01:15');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(Infinity), '--:--');
});
