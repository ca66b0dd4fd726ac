import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseDdSummary } from '../../../scripts/bench/dd.js';
import { planColdReads, dealToJobs, fioIolog, fioJobFile, parseFioJson, seededRandom, READ_SIZE } from '../../../scripts/bench/fio.js';

const BLOCK = 524288;

describe('dd summary', () => {
  test('parses bytes and seconds and computes MB/s from them', () => {
    const t = parseDdSummary('2048+0 records in\n2048+0 records out\n2147483648 bytes (2.1 GB, 2.0 GiB) copied, 4.29497 s, 500 MB/s\n');
    assert.equal(t.bytes, 2147483648);
    assert.equal(t.seconds, 4.29497);
    assert.ok(Math.abs(t.mbps - 2147483648 / 4.29497 / 1e6) < 1e-9);
  });
  test('takes the last summary and rejects output without one', () => {
    const t = parseDdSummary('10 bytes copied, 1 s, 10 B/s\n1048576 bytes (1.0 MB, 1.0 MiB) copied, 0.5 s, 2.1 MB/s');
    assert.equal(t.bytes, 1048576);
    assert.throws(() => parseDdSummary('dd: error reading: Input/output error'), /summary/);
  });
});

describe('cold random read plan', () => {
  test('every read is 4 KiB aligned, inside the file, and in a different 512 KiB block', () => {
    const size = 256 * 1024 * 1024;
    const offsets = planColdReads(size, 500, 1);
    assert.equal(offsets.length, 500);
    const blocks = new Set(offsets.map((o) => Math.floor(o / BLOCK)));
    assert.equal(blocks.size, 500);
    for (const o of offsets) {
      assert.equal(o % READ_SIZE, 0);
      assert.ok(o >= 0 && o + READ_SIZE <= size);
      assert.equal(Math.floor(o / BLOCK), Math.floor((o + READ_SIZE - 1) / BLOCK));
    }
  });
  test('can use every block once, is deterministic per seed, and refuses too many reads', () => {
    const all = planColdReads(64 * BLOCK, 64, 7);
    assert.deepEqual([...new Set(all.map((o) => Math.floor(o / BLOCK)))].sort((a, b) => a - b), Array.from({ length: 64 }, (_, i) => i));
    assert.deepEqual(planColdReads(64 * BLOCK, 20, 3), planColdReads(64 * BLOCK, 20, 3));
    assert.notDeepEqual(planColdReads(64 * BLOCK, 20, 3), planColdReads(64 * BLOCK, 20, 4));
    assert.throws(() => planColdReads(64 * BLOCK, 65, 1), RangeError);
  });
  test('the random offsets are spread over the file, not bunched at its start', () => {
    const offsets = planColdReads(4096 * BLOCK, 1000, 11);
    const lowHalf = offsets.filter((o) => o < 2048 * BLOCK).length;
    assert.ok(lowHalf > 400 && lowHalf < 600, `lower half got ${lowHalf} of 1000`);
    const r = seededRandom(5);
    for (let i = 0; i < 1000; i++) {
      const v = r();
      assert.ok(v >= 0 && v < 1);
    }
  });
  test('dealToJobs spreads reads round-robin and drops empty jobs', () => {
    assert.deepEqual(dealToJobs([1, 2, 3, 4, 5], 2), [[1, 3, 5], [2, 4]]);
    assert.deepEqual(dealToJobs([1, 2], 4), [[1], [2]]);
  });
});

describe('fio files and output', () => {
  test('iolog and job file replay the planned reads, one job per unit of queue depth', () => {
    const log = fioIolog('/m/s.img', [0, 8192]);
    assert.equal(log, 'fio version 2 iolog\n/m/s.img add\n/m/s.img open\n/m/s.img read 0 4096\n/m/s.img read 8192 4096\n/m/s.img close\n');
    const job = fioJobFile(['/a.iolog', '/b.iolog']);
    assert.match(job, /direct=1/);
    assert.match(job, /ioengine=psync/);
    assert.match(job, /\[reader1\]\nread_iolog=\/b\.iolog/);
    assert.equal(job.match(/read_iolog=/g)!.length, 2);
  });
  test('parseFioJson reads IOPS and completion-latency percentiles in ms, skipping leading noise', () => {
    const doc = {
      'fio version': 'fio-3.33',
      jobs: [{ error: 0, read: { total_ios: 20, iops: 45.5, runtime: 440, clat_ns: { percentile: { '50.000000': 21_000_000, '99.000000': 35_500_000 } }, lat_ns: { mean: 22_000_000, max: 40_000_000 } } }],
    };
    const r = parseFioJson(`fio: some warning\n${JSON.stringify(doc)}`, 1);
    assert.deepEqual(r, { queueDepth: 1, reads: 20, iops: 45.5, p50Ms: 21, p99Ms: 35.5, meanMs: 22, maxMs: 40, seconds: 0.44 });
    assert.throws(() => parseFioJson('no json', 1), /no JSON/);
    assert.throws(() => parseFioJson(JSON.stringify({ jobs: [{ error: 5, read: doc.jobs[0]!.read }] }), 1), /error 5/);
  });
});
