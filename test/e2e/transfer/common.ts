/**
 * Shared checks of the transfer e2e tests: running import/export through the real CLI against a
 * real `ebsmount serve`, byte comparison of an image with its export (the export is VolumeSize
 * GiB: the image's bytes, then zeros), counting non-zero 512 KiB blocks, loop devices.
 */
import assert from 'node:assert/strict';
import { open, stat } from 'node:fs/promises';
import { BLOCK_SIZE, GIB } from '../../../src/ebs/constants.js';
import { isAllZero } from '../../../src/ebs/checksum.js';
import { runCli } from '../../helpers/cli.js';
import { run, sha256File } from '../../helpers/images.js';

export async function importCli(endpoint: string, image: string, extra: string[] = []): Promise<string> {
  const r = await runCli(['import', image, '--endpoint', endpoint, ...extra], { timeoutMs: 170_000 });
  assert.equal(r.code, 0, `import failed: ${r.stderr}`);
  assert.match(r.stdout, /^snap-[0-9a-f]{17}\n$/, 'stdout is only the snapshot id');
  return r.stdout.trim();
}

export async function exportCli(endpoint: string, snapshotId: string, file: string, extra: string[] = []): Promise<void> {
  const r = await runCli(['export', snapshotId, file, '--endpoint', endpoint, ...extra], { timeoutMs: 170_000 });
  assert.equal(r.code, 0, `export failed: ${r.stderr}`);
  assert.equal(r.stdout, '', 'export prints nothing on stdout');
}

/** True when bytes [start, end) of the file are all zero. */
export async function isZeroRange(path: string, start: number, end: number): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(8 * 1024 * 1024);
    for (let pos = start; pos < end; ) {
      const n = Math.min(buf.length, end - pos);
      const { bytesRead } = await fh.read(buf, 0, n, pos);
      if (bytesRead === 0) return false;
      for (let i = 0; i < bytesRead; i++) if (buf[i] !== 0) return false;
      pos += bytesRead;
    }
    return true;
  } finally {
    await fh.close();
  }
}

/** Asserts `exported` (`volumeBytes` long, default the image rounded up to GiB) = image + zeros. */
export async function assertSameImage(image: string, exported: string, volumeBytes?: number): Promise<void> {
  const imageSize = (await stat(image)).size || (await deviceSize(image));
  const expectedSize = volumeBytes ?? Math.max(1, Math.ceil(imageSize / GIB)) * GIB;
  const st = await stat(exported);
  if (st.isFile()) assert.equal(st.size, expectedSize, 'export is VolumeSize GiB');
  assert.equal(await sha256File(exported, { start: 0, end: imageSize }), await sha256File(image, { start: 0, end: imageSize }), 'image bytes identical');
  assert.ok(await isZeroRange(exported, imageSize, expectedSize), 'bytes past the image are zeros');
}

export async function deviceSize(dev: string): Promise<number> {
  return Number((await run('blockdev', ['--getsize64', dev])).stdout.trim());
}

/** Indexes of the 512 KiB blocks of `path` that hold a non-zero byte. */
export async function nonZeroBlocks(path: string): Promise<number[]> {
  const fh = await open(path, 'r');
  const out: number[] = [];
  try {
    const buf = Buffer.alloc(BLOCK_SIZE);
    for (let i = 0; ; i++) {
      const { bytesRead } = await fh.read(buf, 0, BLOCK_SIZE, i * BLOCK_SIZE);
      if (bytesRead === 0) break;
      const zero = isAllZero(buf.subarray(0, bytesRead));
      if (!zero) out.push(i);
      if (bytesRead < BLOCK_SIZE) break;
    }
  } finally {
    await fh.close();
  }
  return out;
}

export async function loopAttach(path: string, readOnly: boolean): Promise<string> {
  return (await run('losetup', ['-f', '--show', ...(readOnly ? ['-r'] : []), path])).stdout.trim();
}

export async function loopDetach(dev: string | undefined): Promise<void> {
  if (!dev) return;
  await run('losetup', ['-d', dev]).catch(() => undefined);
}
