/** Unit tests of the server's metadata log (src/server/metadata-log.ts): framing and replay. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetadataLog } from '../../../src/server/metadata-log.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ebsmount-mlog-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('records appended concurrently are replayed in order', () =>
  withDir(async (dir) => {
    const path = join(dir, 'm.log');
    let flushes = 0;
    const { log, records } = await MetadataLog.open(path, { beforeFlush: async () => void flushes++ });
    assert.deepEqual(records, []);
    await Promise.all(Array.from({ length: 500 }, (_, i) => log.append({ i, s: 'é' + i })));
    await log.close();
    assert.ok(flushes >= 1 && flushes < 500, `group commit: ${flushes} flushes for 500 records`);
    const again = await MetadataLog.open<{ i: number; s: string }>(path);
    assert.equal(again.records.length, 500);
    assert.deepEqual(again.records.map((r) => r.i), Array.from({ length: 500 }, (_, i) => i));
    assert.equal(again.records[7]!.s, 'é7');
    assert.equal(again.skipped, 0);
    assert.equal(again.truncatedBytes, 0);
    await again.log.close();
  }));

test('a torn last line is dropped and truncated; appends continue after it', () =>
  withDir(async (dir) => {
    const path = join(dir, 'm.log');
    const { log } = await MetadataLog.open(path);
    await log.append({ a: 1 });
    await log.append({ a: 2 });
    await log.close();
    const goodSize = (await stat(path)).size;
    await appendFile(path, '1234abcd {"a":3'); // crash mid-write: no newline
    const r1 = await MetadataLog.open<{ a: number }>(path);
    assert.deepEqual(r1.records, [{ a: 1 }, { a: 2 }]);
    assert.equal(r1.truncatedBytes, 15);
    assert.equal((await stat(path)).size, goodSize);
    await r1.log.append({ a: 4 });
    await r1.log.close();
    const r2 = await MetadataLog.open<{ a: number }>(path);
    assert.deepEqual(r2.records, [{ a: 1 }, { a: 2 }, { a: 4 }]);
    await r2.log.close();
  }));

test('a complete last line with a bad checksum is treated as torn', () =>
  withDir(async (dir) => {
    const path = join(dir, 'm.log');
    const { log } = await MetadataLog.open(path);
    await log.append({ a: 1 });
    await log.close();
    const text = await readFile(path, 'utf8');
    await writeFile(path, text + text.replace('"a":1', '"a":2'));
    const r = await MetadataLog.open<{ a: number }>(path);
    assert.deepEqual(r.records, [{ a: 1 }]);
    assert.equal(r.skipped, 0);
    assert.ok(r.truncatedBytes > 0);
    await r.log.close();
  }));

test('a corrupt line in the middle is skipped and counted', () =>
  withDir(async (dir) => {
    const path = join(dir, 'm.log');
    const { log } = await MetadataLog.open(path);
    await log.append({ a: 1 });
    await log.append({ a: 2 });
    await log.append({ a: 3 });
    await log.close();
    const lines = (await readFile(path, 'utf8')).split('\n');
    lines[1] = lines[1]!.replace('"a":2', '"a":9');
    await writeFile(path, lines.join('\n'));
    const r = await MetadataLog.open<{ a: number }>(path);
    assert.deepEqual(r.records, [{ a: 1 }, { a: 3 }]);
    assert.equal(r.skipped, 1);
    assert.equal(r.truncatedBytes, 0);
    await r.log.close();
  }));

test('append after close rejects', () =>
  withDir(async (dir) => {
    const { log } = await MetadataLog.open(join(dir, 'm.log'));
    await log.close();
    await assert.rejects(log.append({ a: 1 }), /closed/);
  }));
