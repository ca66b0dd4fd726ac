/**
 * E2E: raw reads of the mounted image against the source image, byte for byte — odd offsets and
 * lengths, reads crossing blocks and the GiB boundary, holes, the last (partial, padded) block,
 * reads past the end — and the requests they cost (`ebsmount status --json`): a region read
 * twice is fetched once, a hole fetches nothing, a sequential read triggers read-ahead. Writes
 * and truncation get EROFS. A sparse 16 TiB snapshot mounts quickly without listing everything.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { open, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, ebsClient, makeSnapshot, seededBlock, type TestServer } from '../../helpers/server.js';
import { prng, seededBytes } from '../../helpers/images.js';
import { cleanup, cleanupAll, importImage, mountSnapshot, sh, tempDir, type MountedSnapshot } from '../../helpers/mounts.js';
import { runCli } from '../../helpers/cli.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BLOCK = 524_288;
/** 2 GiB volume; the image ends 1000 bytes short of it, so the last block is partial (padded). */
const IMAGE_SIZE = 2 * GiB - 1000;
/** Regions of data the byte-comparison test reads around. */
const REGIONS: [number, number][] = [
  [0, 3 * MiB],
  [100 * MiB + 12_345, 700 * 1024],
  [GiB - MiB, 2 * MiB],
  [1200 * MiB, 8 * MiB],
  [IMAGE_SIZE - 300 * 1024, 300 * 1024],
];
/** Untouched until the request-counting tests. */
const ISOLATED = 500 * MiB + 7; // 10 bytes alone in their block
const SEQ_START = 1536 * MiB;
const SEQ_LEN = 24 * MiB;

describe('raw reads, request counting and EROFS', { timeout: 180_000 }, () => {
  let server: TestServer;
  let work: string;
  let image: string;
  let m: MountedSnapshot;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-raw-');
    image = join(work, 'raw.img');
    const fh = await open(image, 'w');
    try {
      await fh.truncate(IMAGE_SIZE);
      for (const [i, [off, len]] of [...REGIONS, [SEQ_START, SEQ_LEN]].entries()) await fh.write(seededBytes(3, `r${i}`, len), 0, len, off);
      await fh.write(Buffer.from('0123456789'), 0, 10, ISOLATED);
    } finally {
      await fh.close();
    }
    const snap = await importImage(server.endpoint, image);
    m = await mountSnapshot(server.endpoint, snap);
  });
  after(() => cleanupAll());

  /** `length` bytes of the source at `pos`, zeros past its end (the padded volume). */
  async function sourceBytes(pos: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    const fh = await open(image, 'r');
    try {
      if (pos < IMAGE_SIZE) await fh.read(out, 0, Math.min(length, IMAGE_SIZE - pos), pos);
    } finally {
      await fh.close();
    }
    return out;
  }

  async function mountedBytes(pos: number, length: number): Promise<{ n: number; buf: Buffer }> {
    const buf = Buffer.alloc(length);
    const fh = await open(m.imagePath, 'r');
    try {
      let n = 0;
      while (n < length) {
        const r = await fh.read(buf, n, length - n, pos + n);
        if (r.bytesRead === 0) break;
        n += r.bytesRead;
      }
      return { n, buf: buf.subarray(0, n) };
    } finally {
      await fh.close();
    }
  }

  /** One read with O_DIRECT (bypasses the page cache: every read reaches ebsmount). */
  async function directRead(pos4k: number, count4k: number): Promise<void> {
    const r = await sh('dd', [`if=${m.imagePath}`, 'of=/dev/null', 'bs=4096', `skip=${pos4k}`, `count=${count4k}`, 'iflag=direct', 'status=none']);
    assert.equal(r.code, 0, r.stderr);
  }

  test('the volume is VolumeSize GiB', async () => {
    assert.equal((await stat(m.imagePath)).size, 2 * GiB);
  });

  test('reads at odd offsets and lengths equal the source, holes and the last block included', async () => {
    const rand = prng(42);
    const cases: [number, number][] = [
      [0, 1],
      [BLOCK - 1, 2],
      [3 * MiB - 17, 40_000],
      [100 * MiB + 12_000, 800 * 1024 + 3],
      [GiB - 333, 1_000_001],
      [777 * MiB + 5, 3 * BLOCK], // a hole
      [2 * GiB - BLOCK - 11, BLOCK + 11], // into the last block, to the end of the volume
      [2 * GiB - 1500, 1500], // the padded tail: zeros after the image's last byte
    ];
    for (let i = 0; i < 40; i++) {
      const [off] = REGIONS[Math.floor(rand() * REGIONS.length)];
      const pos = Math.max(0, off - MiB + Math.floor(rand() * 4 * MiB));
      cases.push([Math.min(pos, 2 * GiB - 1), 1 + Math.floor(rand() * 3 * MiB)]);
    }
    for (const [pos, len] of cases) {
      const want = await sourceBytes(pos, Math.min(len, 2 * GiB - pos));
      const got = await mountedBytes(pos, len);
      assert.equal(got.n, want.length, `length at ${pos}+${len}`);
      assert.ok(got.buf.equals(want), `bytes at ${pos}+${len}`);
    }
  });

  test('reads past the end return nothing; one straddling the end is short', async () => {
    assert.equal((await mountedBytes(2 * GiB, 4096)).n, 0);
    assert.equal((await mountedBytes(2 * GiB + 12345, 10)).n, 0);
    const r = await mountedBytes(2 * GiB - 100, 1000);
    assert.equal(r.n, 100);
    assert.ok(r.buf.equals(Buffer.alloc(100)));
  });

  test('a region read twice is fetched once; a hole fetches nothing', async () => {
    const before = await m.status();
    await directRead(Math.floor(ISOLATED / 4096), 1);
    const once = await m.status();
    assert.equal(once.stats['ebs.get.requests'] - before.stats['ebs.get.requests'], 1);
    await directRead(Math.floor(ISOLATED / 4096), 1);
    const twice = await m.status();
    assert.equal(twice.stats['ebs.get.requests'], once.stats['ebs.get.requests'], 'second read fetched again');
    assert.ok((twice.stats['cache.hit'] ?? 0) > (once.stats['cache.hit'] ?? 0));
    await directRead((1400 * MiB) / 4096, 256); // 1 MiB of hole
    const hole = await m.status();
    assert.equal(hole.stats['ebs.get.requests'], twice.stats['ebs.get.requests'], 'a hole made a request');
    assert.equal(hole.stats['blocks.fetched'], twice.stats['blocks.fetched']);
  });

  test('a sequential read triggers read-ahead and costs about one request per block', async () => {
    const before = await m.status();
    const r = await sh('dd', [`if=${m.imagePath}`, 'of=/dev/null', 'bs=128K', `skip=${SEQ_START / (128 * 1024)}`, `count=${SEQ_LEN / (128 * 1024)}`, 'status=none']);
    assert.equal(r.code, 0, r.stderr);
    const after = await m.status();
    const gets = after.stats['ebs.get.requests'] - before.stats['ebs.get.requests'];
    const blocks = SEQ_LEN / BLOCK;
    assert.ok((after.stats['prefetch.issued'] ?? 0) > (before.stats['prefetch.issued'] ?? 0), 'no read-ahead');
    assert.ok((after.stats['prefetch.hit'] ?? 0) > (before.stats['prefetch.hit'] ?? 0), 'read-ahead never served a read');
    assert.ok(gets >= blocks && gets <= Math.ceil(blocks * 1.1) + 64, `${gets} requests for ${blocks} blocks`);
    assert.equal(after.requests.get, after.stats['ebs.get.requests']);
    assert.ok(after.estimatedCostUsd.total > 0);
  });

  test('writes and truncation are refused with EROFS', async () => {
    await assert.rejects(open(m.imagePath, 'r+'), { code: 'EROFS' });
    await assert.rejects(open(m.imagePath, 'w'), { code: 'EROFS' });
    await assert.rejects(truncate(m.imagePath, 0), { code: 'EROFS' });
    await assert.rejects(open(join(m.mountpoint, 'new-file'), 'w'), (err: NodeJS.ErrnoException) => ['EROFS', 'EACCES'].includes(err.code!));
    const dd = await sh('dd', ['if=/dev/zero', `of=${m.imagePath}`, 'bs=4096', 'count=1', 'conv=notrunc', 'status=none']);
    assert.notEqual(dd.code, 0);
    assert.match(dd.stderr, /Read-only file system/);
    // the data is unchanged
    assert.ok((await mountedBytes(0, 4096)).buf.equals(await sourceBytes(0, 4096)));
  });

  test('the status table names the snapshot, requests and cost', async () => {
    const r = await runCli(['status', m.mountpoint]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(m.snapshotId));
    assert.match(r.stdout, /volume size\s+2 GiB/);
    assert.match(r.stdout, /requests\s+\d+ get, \d+ list, 0 put/);
    assert.match(r.stdout, /estimated cost\s+\$/);
  });
});

describe('a sparse 16 TiB snapshot', { timeout: 120_000 }, () => {
  let server: TestServer;
  after(() => cleanupAll());

  test('mounts quickly, lists far less than the volume, and reads its blocks', async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    const client = ebsClient(server.endpoint, { maxSockets: 64 });
    const total = 16384 * 2048; // blocks of 16 TiB
    const blocks = new Map<number, Buffer>();
    for (let i = 0; i < 300; i++) {
      const index = (i * 111_847 + 13) % total;
      blocks.set(index, seededBlock(index));
    }
    blocks.set(total - 1, seededBlock(total - 1));
    const snap = await makeSnapshot(client, blocks, { volumeSize: 16384 });
    client.destroy();

    const started = Date.now();
    const m = await mountSnapshot(server.endpoint, snap);
    const mountMs = Date.now() - started;
    assert.ok(mountMs < 10_000, `mount took ${mountMs} ms`);
    assert.equal((await stat(m.imagePath)).size, 16 * 1024 ** 4);
    const status = await m.status();
    assert.equal(status.volumeSizeGiB, 16384);
    // listing everything block by block would be total / 10,000 = 3,355 pages
    assert.ok(status.requests.list < 50, `${status.requests.list} list requests`);

    const fh = await open(m.imagePath, 'r');
    try {
      for (const index of [...blocks.keys()].slice(0, 20).concat([total - 1])) {
        const buf = Buffer.alloc(BLOCK);
        const { bytesRead } = await fh.read(buf, 0, BLOCK, index * BLOCK);
        assert.equal(bytesRead, BLOCK);
        assert.ok(buf.equals(blocks.get(index)!), `block ${index}`);
      }
      const hole = Buffer.alloc(BLOCK, 1);
      await fh.read(hole, 0, BLOCK, 5 * BLOCK);
      assert.ok(hole.equals(Buffer.alloc(BLOCK)));
    } finally {
      await fh.close();
    }
    const after = await m.status();
    assert.ok(after.requests.list < 50, `${after.requests.list} list requests after reads`);
    assert.ok(after.stats['blocks.fetched'] >= 21);
  });
});
