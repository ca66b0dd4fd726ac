/**
 * ServerStore's durability order (src/server/store.ts): memory changes only after the metadata
 * record is durable; a failed record changes nothing and is not remembered (a ClientToken retry
 * works). The metadata log is swapped for a double that fails or holds appends; the store's
 * data directory, block files and replay are real.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerStore } from '../../../src/server/store.js';
import { silentLogger } from '../../../src/util/log.js';

const BLOCK = Buffer.alloc(524_288, 7);
const SHA = createHash('sha256').update(BLOCK).digest('hex');

interface LogLike {
  append(r: unknown): Promise<void>;
  close(): Promise<void>;
}

/** Replaces the store's log: `mode` 'fail' rejects every append, 'hold' queues them until released. */
function swapLog(store: ServerStore) {
  const s = store as unknown as { log: LogLike };
  const real = s.log;
  const held: { r: unknown; go: () => void }[] = [];
  let mode: 'fail' | 'hold' | 'real' = 'real';
  s.log = {
    append: (r) => {
      if (mode === 'fail') return Promise.reject(new Error('EIO (simulated)'));
      if (mode === 'hold') return new Promise<void>((go, no) => held.push({ r, go: () => real.append(r).then(go, no) }));
      return real.append(r);
    },
    close: () => real.close(),
  };
  return {
    set: (m: typeof mode) => (mode = m),
    release: () => held.splice(0).forEach((h) => h.go()),
    heldCount: () => held.length,
  };
}

async function withStore(fn: (dir: string, store: ServerStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ebsmount-store-'));
  const store = await ServerStore.open({ dataDir: join(dir, 'data'), logger: silentLogger });
  try {
    await fn(join(dir, 'data'), store);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('a failed start changes nothing and is not cached for its ClientToken; a retry succeeds', async () => {
  await withStore(async (_dir, store) => {
    const log = swapLog(store);
    log.set('fail');
    await assert.rejects(store.start({ volumeSize: 1, clientToken: 'tok-1' }), /EIO/);
    assert.equal(store.snapshots.size, 0, 'no snapshot in memory that the log does not have');
    log.set('real');
    const snap = await store.start({ volumeSize: 1, clientToken: 'tok-1' });
    assert.equal(snap.status, 'pending');
    assert.equal((await store.start({ volumeSize: 1, clientToken: 'tok-1' })).id, snap.id, 'idempotent after the retry');
  });
});

test('memory changes only once the record is durable: start, put, complete', async () => {
  await withStore(async (dir, store) => {
    const log = swapLog(store);
    log.set('hold');
    const starting = store.start({ volumeSize: 1, clientToken: 'tok-2' });
    await new Promise((r) => setImmediate(r));
    assert.equal(log.heldCount(), 1);
    assert.equal(store.snapshots.size, 0, 'not visible before durable');
    const again = store.start({ volumeSize: 1, clientToken: 'tok-2' }); // a retry while in flight: the same snapshot
    log.release();
    const snap = await starting;
    assert.equal((await again).id, snap.id);
    assert.equal(store.snapshots.size, 1);

    const putting = store.put(snap.id, 3, BLOCK, SHA);
    while (log.heldCount() === 0) await new Promise((r) => setImmediate(r));
    assert.equal(snap.own.size, 0, 'put not applied before durable');
    const completing = store.complete(snap.id, 1); // waits for the put on its way
    await assert.rejects(store.put(snap.id, 4, BLOCK, SHA), /being completed/);
    log.release();
    await putting;
    while (log.heldCount() === 0) await new Promise((r) => setImmediate(r));
    assert.equal(snap.status, 'pending', 'completion not applied before durable');
    log.release();
    assert.equal(await completing, 'completed', 'the count covers the put recorded before it');
    await store.close();
    const reopened = await ServerStore.open({ dataDir: dir, logger: silentLogger });
    try {
      const r = reopened.get(snap.id);
      assert.equal(r.status, 'completed');
      assert.deepEqual([...r.own.keys()], [3]);
    } finally {
      await reopened.close();
    }
  });
});

test('a failed put or completion leaves memory as the log has it; the completion can be retried', async () => {
  await withStore(async (_dir, store) => {
    const snap = await store.start({ volumeSize: 1 });
    const log = swapLog(store);
    log.set('fail');
    await assert.rejects(store.put(snap.id, 1, BLOCK, SHA), /EIO/);
    assert.equal(snap.own.size, 0);
    log.set('real');
    await store.put(snap.id, 2, BLOCK, SHA);
    log.set('fail');
    await assert.rejects(store.complete(snap.id, 1), /EIO/);
    assert.equal(snap.status, 'pending');
    log.set('real');
    assert.equal(await store.complete(snap.id, 1), 'completed');
  });
});
