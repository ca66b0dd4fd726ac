/**
 * E2E: server faults while reading through the mount — throttling, 5xx, corrupted bodies,
 * latency with jitter, and block tokens that expire after 2 s. Every byte read still equals the
 * source, and `ebsmount status` shows the retries, throttles and checksum mismatches it took.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.js';
import { seededBytes } from '../../helpers/images.js';
import { cleanup, cleanupAll, importImage, mountSnapshot, sh, tempDir, type MountedSnapshot } from '../../helpers/mounts.js';

const MiB = 1024 * 1024;
const REGIONS: [number, number][] = [
  [0, 8 * MiB],
  [300 * MiB + 4097, 6 * MiB],
  [700 * MiB, 10 * MiB],
  [1023 * MiB, MiB],
];
const FAULTS = ['--throttle-rate', '0.15', '--error-rate', '0.1', '--corrupt-rate', '0.1', '--latency-ms', '10', '--latency-jitter-ms', '20', '--token-ttl', '2'];

describe('reads under server faults', { timeout: 180_000 }, () => {
  let server: TestServer;
  let image: string;
  let m: MountedSnapshot;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    const work = await tempDir('ebsmount-faults-');
    image = join(work, 'img');
    const fh = await open(image, 'w');
    try {
      await fh.truncate(1024 * MiB);
      for (const [i, [off, len]] of REGIONS.entries()) await fh.write(seededBytes(5, `f${i}`, len), 0, len, off);
    } finally {
      await fh.close();
    }
    const snap = await importImage(server.endpoint, image);
    await server.restart(FAULTS);
    m = await mountSnapshot(server.endpoint, snap);
  });
  after(() => cleanupAll());

  async function sha(path: string, pos: number, len: number): Promise<string> {
    const r = await sh('sh', ['-c', `dd if='${path}' bs=4096 iflag=skip_bytes,count_bytes,direct skip=${pos} count=${len} status=none | sha256sum`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split(' ')[0];
  }

  function want(pos: number, len: number, fh: Buffer): string {
    return createHash('sha256').update(fh.subarray(pos, pos + len)).digest('hex');
  }

  test('every byte equals the source, also after the block tokens expired', async () => {
    const src = await readFile(image);
    const ranges: [number, number][] = REGIONS.map(([o, l]) => [Math.max(0, o - 4096), l + 8192]);
    const half = Math.ceil(ranges.length / 2);
    for (const [pos, len] of ranges.slice(0, half)) assert.equal(await sha(m.imagePath, pos, len), want(pos, len, src), `${pos}+${len}`);
    // tokens listed so far expire after 2 s: the rest must be read with fresh ones
    await new Promise((r) => setTimeout(r, 2_500));
    for (const [pos, len] of ranges.slice(half)) assert.equal(await sha(m.imagePath, pos, len), want(pos, len, src), `${pos}+${len}`);
    // and again, long after the first tokens died (cached blocks are fine, the rest re-fetched)
    await new Promise((r) => setTimeout(r, 2_500));
    for (const [pos, len] of ranges) assert.equal(await sha(m.imagePath, pos, len), want(pos, len, src), `again ${pos}+${len}`);

    const s = await m.status();
    assert.ok(s.stats['ebs.get.retries'] > 0, 'no retries');
    assert.ok(s.stats['ebs.throttles'] > 0, 'no throttles');
    assert.ok(s.stats['ebs.checksum.mismatch'] > 0, 'no checksum mismatch');
    assert.equal(s.stats['ebs.errors'] ?? 0, 0, 'a read failed');
    assert.ok(s.requests.list >= 2, 'expired tokens were never listed again');
  });
});
