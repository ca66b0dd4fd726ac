/**
 * `ebsmount serve` durability and concurrency end to end: kill -9 during and after puts, then a
 * restart on the same data directory (acknowledged data present, tokens and ClientTokens still
 * valid, a torn metadata record tolerated), hundreds of concurrent requests, clean SIGTERM, and
 * one server per data directory.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, writeFile } from 'node:fs/promises';
import { lockHolder } from '../../../src/os/process-lock.js';
import { join } from 'node:path';
import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand, type EBSClient } from '@aws-sdk/client-ebs';
import {
  b64sha,
  ebsClient,
  getBlock,
  linearOf,
  listAllBlocks,
  makeSnapshot,
  SERVER_CLI,
  seededBlock,
  startServer,
  type TestServer,
} from '../../helpers/server.js';

function putCmd(id: string, index: number, data: Buffer) {
  return new PutSnapshotBlockCommand({ SnapshotId: id, BlockIndex: index, BlockData: data, DataLength: data.length, Checksum: b64sha(data), ChecksumAlgorithm: 'SHA256' });
}

async function verifySnapshot(client: EBSClient, id: string, blocks: Map<number, Buffer>): Promise<void> {
  const listed = await listAllBlocks(client, id);
  assert.deepEqual(listed.indexes, [...blocks.keys()].sort((a, b) => a - b));
  await Promise.all(
    [...listed.blocks].map(async ([i, tok]) => {
      const g = await getBlock(client, id, i, tok);
      assert.ok(g.data.equals(blocks.get(i)!), `block ${i}`);
    }),
  );
}

describe('ebsmount serve: durability', () => {
  let server: TestServer;
  let client: EBSClient;
  before(async () => {
    server = await startServer();
    client = ebsClient(server.endpoint, { maxSockets: 64 });
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  test('kill -9 during puts: every acknowledged put is there after a restart', async () => {
    const blocks = new Map<number, Buffer>();
    for (let i = 0; i < 240; i++) blocks.set(i * 5, seededBlock(2000 + i));
    const s = await client.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: 'durable-1' }));
    const id = s.SnapshotId!;
    const acked = new Set<number>();
    let killed: Promise<void> | undefined;
    const queue = [...blocks.keys()];
    const worker = async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        try {
          await client.send(putCmd(id, i, blocks.get(i)!));
          acked.add(i);
          if (acked.size === 80) killed = server.kill9();
        } catch {
          /* the server died under this request */
        }
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    await killed;
    assert.ok(acked.size >= 80 && acked.size < blocks.size, `killed mid-way (${acked.size} acknowledged)`);
    await server.restart();
    client.destroy();
    client = ebsClient(server.endpoint, { maxSockets: 64 });
    // The same ClientToken finds the same snapshot, still pending.
    const again = await client.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: 'durable-1' }));
    assert.equal(again.SnapshotId, id);
    assert.equal(again.Status, 'pending');
    // Re-put only what was not acknowledged; the count and LINEAR checksum at completion prove
    // that no acknowledged block was lost.
    await Promise.all([...blocks.keys()].filter((i) => !acked.has(i)).map((i) => client.send(putCmd(id, i, blocks.get(i)!))));
    const c = await client.send(
      new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: blocks.size, Checksum: linearOf(blocks), ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }),
    );
    assert.equal(c.Status, 'completed');
    await verifySnapshot(client, id, blocks);
  });

  test('kill -9 after completion: snapshots, tokens and lineage survive a restart', async () => {
    const parentBlocks = new Map<number, Buffer>(Array.from({ length: 30 }, (_, i) => [i, seededBlock(3000 + i)]));
    const parent = await makeSnapshot(client, parentBlocks, { volumeSize: 2, description: 'p', tags: [{ Key: 'k', Value: 'v' }] });
    const childBlocks = new Map<number, Buffer>([[3, seededBlock(3100)], [2500, seededBlock(3101)]]);
    const child = await makeSnapshot(client, childBlocks, { volumeSize: 2, parent });
    const tokens = (await listAllBlocks(client, child)).blocks;
    await server.kill9();
    await server.restart();
    client.destroy();
    client = ebsClient(server.endpoint, { maxSockets: 64 });
    await verifySnapshot(client, parent, parentBlocks);
    await verifySnapshot(client, child, new Map([...parentBlocks, ...childBlocks]));
    // Tokens issued before the crash still work (the token key is persisted).
    assert.ok((await getBlock(client, child, 2500, tokens.get(2500)!)).data.equals(seededBlock(3101)));
    assert.ok((await getBlock(client, child, 4, tokens.get(4)!)).data.equals(seededBlock(3004)));
  });

  test('a torn record at the end of the metadata log is dropped at restart', async () => {
    const blocks = new Map<number, Buffer>([[1, seededBlock(4000)]]);
    const id = await makeSnapshot(client, blocks);
    await server.kill9();
    await appendFile(join(server.dataDir, 'metadata.log'), '0badc0de {"t":"put","id":"snap-');
    await server.restart();
    client.destroy();
    client = ebsClient(server.endpoint, { maxSockets: 64 });
    assert.match(server.stderr(), /torn/);
    await verifySnapshot(client, id, blocks);
    const next = await makeSnapshot(client, new Map([[2, seededBlock(4001)]]), { parent: id });
    await server.restart();
    await verifySnapshot(client, next, new Map([[1, seededBlock(4000)], [2, seededBlock(4001)]]));
  });

  test('300 concurrent puts and 300 concurrent gets', async () => {
    const c300 = ebsClient(server.endpoint, { maxSockets: 300 });
    try {
      const blocks = new Map<number, Buffer>(Array.from({ length: 300 }, (_, i) => [i, seededBlock(5000 + i)]));
      const s = await c300.send(new StartSnapshotCommand({ VolumeSize: 1 }));
      const id = s.SnapshotId!;
      const results = await Promise.all([...blocks].map(([i, d]) => c300.send(putCmd(id, i, d))));
      assert.ok(results.every((r) => r.$metadata.httpStatusCode === 201));
      const c = await c300.send(
        new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 300, Checksum: linearOf(blocks), ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }),
      );
      assert.equal(c.Status, 'completed');
      const { blocks: tokens } = await listAllBlocks(c300, id);
      const got = await Promise.all([...tokens].map(([i, t]) => getBlock(c300, id, i, t).then((g) => [i, g.data] as const)));
      assert.equal(got.length, 300);
      for (const [i, data] of got) assert.ok(data.equals(blocks.get(i)!), `block ${i}`);
    } finally {
      c300.destroy();
    }
  });

  test('concurrent puts into many snapshots and into one block stay consistent', async () => {
    const c200 = ebsClient(server.endpoint, { maxSockets: 200 });
    try {
      const ids = await Promise.all(Array.from({ length: 10 }, () => c200.send(new StartSnapshotCommand({ VolumeSize: 1 })).then((s) => s.SnapshotId!)));
      const puts: Promise<unknown>[] = [];
      ids.forEach((id, k) => {
        for (let i = 0; i < 15; i++) puts.push(c200.send(putCmd(id, i, seededBlock(6000 + k * 100 + i))));
        // Ten racing writes of one block: exactly one of them wins.
        for (let v = 0; v < 10; v++) puts.push(c200.send(putCmd(id, 100, seededBlock(7000 + v))));
      });
      await Promise.all(puts);
      await Promise.all(ids.map((id) => c200.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 16 })).then((c) => assert.equal(c.Status, 'completed'))));
      for (const [k, id] of ids.entries()) {
        const { blocks } = await listAllBlocks(c200, id);
        assert.equal(blocks.size, 16);
        assert.ok((await getBlock(c200, id, 14, blocks.get(14)!)).data.equals(seededBlock(6000 + k * 100 + 14)));
        const winner = (await getBlock(c200, id, 100, blocks.get(100)!)).data;
        assert.ok(Array.from({ length: 10 }, (_, v) => seededBlock(7000 + v)).some((b) => b.equals(winner)));
      }
    } finally {
      c200.destroy();
    }
  });

  test('one server per data directory', async () => {
    const second = spawn(process.execPath, [SERVER_CLI, 'serve', '--data', server.dataDir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    second.stderr.on('data', (d) => (stderr += d));
    second.stdout.on('data', (d) => (stdout += d));
    const code = await new Promise<number | null>((res) => second.on('exit', (c) => res(c)));
    assert.notEqual(code, 0);
    assert.equal(stdout, '');
    assert.match(stderr, /in use by another server/);
  });

  test('a stale serve.pid naming a live process (pid reuse) does not block a start; a kill -9 releases the lock', async () => {
    const s2 = await startServer();
    const decoy = spawn('bash', ['-c', 'exec -a serve sleep 60'], { stdio: 'ignore' });
    try {
      await s2.kill9();
      // What an old pid lock trusted: a live process whose command line says "serve".
      await writeFile(join(s2.dataDir, 'serve.pid'), `${decoy.pid}\n`);
      await s2.restart();
      assert.equal(lockHolder(join(s2.dataDir, 'serve.lock')), s2.process.pid);
    } finally {
      decoy.kill('SIGKILL');
      await s2.stop();
    }
  });

  test('SIGTERM stops the server cleanly (exit 0, lock released)', async () => {
    const s2 = await startServer();
    try {
      const proc = s2.process;
      const exited = new Promise<string>((res) => proc.once('exit', (c, sig) => res(`${c}/${sig}`)));
      proc.kill('SIGTERM');
      assert.equal(await exited, '0/null', s2.stderr());
      assert.equal(lockHolder(join(s2.dataDir, 'serve.lock')), undefined);
      assert.match(s2.stderr(), /stopped/);
    } finally {
      await s2.stop();
    }
  });
});
