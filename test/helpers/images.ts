/**
 * Test images: deterministic file trees and real filesystem images made by the real mkfs tools
 * (ext4, xfs, btrfs) and sgdisk, for end-to-end tests of import / export / mount / writeback.
 *
 * Contract:
 * - `makeTree(dir, {files, seed})` is deterministic: the same seed gives the same names, sizes
 *   and bytes. It writes `files` small files (0–64 KiB, most under 8 KiB) across nested
 *   directories (d0..d9/s0..s9), four large files (1–8 MiB) under big/, one sparse file
 *   (sparse.bin, 32 MiB with three 64 KiB data runs and holes between), an empty file, a symlink
 *   and an empty directory.
 * - makeExt4Image / makeXfsImage / makeBtrfsImage create a sparse image file of `sizeMiB` MiB
 *   holding a copy of `srcDir` (ext4: mkfs.ext4 -d; xfs, whose mkfs 6.1 cannot populate from a
 *   directory, and btrfs, whose --rootdir grows the image: mkfs, then loop mount rw + cp -a,
 *   always unmounted). The image keeps exactly the size asked for. XFS needs at least 300 MiB,
 *   btrfs about 120 MiB.
 * - `makeGptImage(path, parts)` lays partitions out 1 MiB-aligned after the GPT (first at 1 MiB),
 *   in the order given, builds each filesystem in a temporary image and copies it in with
 *   dd conv=notrunc,sparse. Returns each partition's byte offset and size.
 * - `treeManifest(dir)`: relative path → SHA-256 hex of every regular file, and
 *   "symlink:<target>" for symlinks; directories are not entries, and a top-level lost+found is
 *   skipped (mkfs.ext4 creates it).
 * - `run(cmd, args)` rejects with the command's stderr on a non-zero exit.
 */
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, readlink, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prng } from '../../src/util/prng.js';

export { prng };

const MiB = 1024 * 1024;

export interface RunResult {
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 64 * MiB, timeout: opts.timeoutMs ?? 300_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${cmd} ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`));
        return;
      }
      resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}


/** `n` deterministic pseudo-random bytes for (seed, name): AES-128-CTR over zeros (fast). */
export function seededBytes(seed: number, name: string, n: number): Buffer {
  const key = createHash('sha256').update(`${seed}:${name}`).digest().subarray(0, 16);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(n)), c.final()]);
}

export interface TreeInfo {
  files: number;
  bytes: number;
}

export async function makeTree(dir: string, opts: { files?: number; seed?: number } = {}): Promise<TreeInfo> {
  const files = opts.files ?? 2000;
  const seed = opts.seed ?? 1;
  const rand = prng(seed);
  let count = 0;
  let bytes = 0;
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${i % 10}`, `s${Math.floor(i / 10) % 10}`);
    if (i < 100) await mkdir(sub, { recursive: true });
    const r = rand();
    const size = r < 0.85 ? Math.floor(rand() * 8192) : Math.floor(rand() * 65536);
    const name = join(sub, `f${i}.dat`);
    await writeFile(name, seededBytes(seed, `small${i}`, size));
    count++;
    bytes += size;
  }
  await mkdir(join(dir, 'big'), { recursive: true });
  for (let i = 0; i < 4; i++) {
    const size = (1 + Math.floor(rand() * 8)) * MiB - Math.floor(rand() * 4096);
    await writeFile(join(dir, 'big', `large${i}.bin`), seededBytes(seed, `large${i}`, Math.max(MiB, size)));
    count++;
    bytes += Math.max(MiB, size);
  }
  const fh = await open(join(dir, 'sparse.bin'), 'w');
  try {
    await fh.truncate(32 * MiB);
    for (const [k, off] of [0, 10 * MiB + 4096, 31 * MiB].entries()) {
      const data = seededBytes(seed, `sparse${k}`, 64 * 1024);
      await fh.write(data, 0, data.length, off);
      bytes += data.length;
    }
  } finally {
    await fh.close();
  }
  count++;
  await writeFile(join(dir, 'empty.txt'), '');
  count++;
  await symlink('big/large0.bin', join(dir, 'link-to-large0'));
  await mkdir(join(dir, 'empty-dir'), { recursive: true });
  return { files: count, bytes };
}

async function sparseFile(path: string, sizeMiB: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(sizeMiB * MiB);
  } finally {
    await fh.close();
  }
}

export async function makeExt4Image(path: string, sizeMiB: number, srcDir: string): Promise<void> {
  await sparseFile(path, sizeMiB);
  await run('mkfs.ext4', ['-q', '-F', '-d', srcDir, path]);
}

export async function makeBtrfsImage(path: string, sizeMiB: number, srcDir: string): Promise<void> {
  await sparseFile(path, sizeMiB);
  // Not --rootdir: btrfs-progs 6.2 grows the image file past the size asked for with it.
  await run('mkfs.btrfs', ['-q', '-f', path]);
  await populateViaLoopMount(path, srcDir);
}

export async function makeXfsImage(path: string, sizeMiB: number, srcDir: string): Promise<void> {
  await sparseFile(path, sizeMiB);
  await run('mkfs.xfs', ['-q', '-f', path]);
  await populateViaLoopMount(path, srcDir);
}

/** Mounts the image read-write on a loop device, copies srcDir in, and always unmounts. */
async function populateViaLoopMount(path: string, srcDir: string): Promise<void> {
  const mnt = await mkdtemp(join(tmpdir(), 'ebsmount-populate-'));
  let mounted = false;
  try {
    await run('mount', ['-o', 'loop', path, mnt]);
    mounted = true;
    await run('cp', ['-a', '--sparse=always', `${srcDir}/.`, `${mnt}/`]);
    await run('sync', ['-f', mnt]);
  } finally {
    if (mounted) {
      try {
        await run('umount', [mnt]);
      } catch {
        await run('umount', ['-l', mnt]).catch(() => undefined);
      }
    }
    await rmdir(mnt).catch(() => undefined);
  }
}

export type FsType = 'ext4' | 'xfs' | 'btrfs';

export interface PartitionSpec {
  fs: FsType;
  sizeMiB: number;
  srcDir: string;
}

export interface PartitionInfo {
  /** Byte offset in the image. */
  start: number;
  /** Bytes. */
  size: number;
  fs: FsType;
}

export async function makeFsImage(fs: FsType, path: string, sizeMiB: number, srcDir: string): Promise<void> {
  if (fs === 'ext4') return makeExt4Image(path, sizeMiB, srcDir);
  if (fs === 'xfs') return makeXfsImage(path, sizeMiB, srcDir);
  return makeBtrfsImage(path, sizeMiB, srcDir);
}

export async function makeGptImage(path: string, parts: PartitionSpec[]): Promise<{ partitions: PartitionInfo[] }> {
  const partitions: PartitionInfo[] = [];
  let offset = MiB;
  for (const p of parts) {
    partitions.push({ start: offset, size: p.sizeMiB * MiB, fs: p.fs });
    offset += p.sizeMiB * MiB;
  }
  const totalMiB = offset / MiB + 1; // room for the backup GPT
  await sparseFile(path, totalMiB);
  const args = ['-o'];
  partitions.forEach((p, i) => {
    const n = i + 1;
    const first = p.start / 512;
    const last = (p.start + p.size) / 512 - 1;
    args.push('-n', `${n}:${first}:${last}`, '-t', `${n}:8300`, '-c', `${n}:${p.fs}${n}`);
  });
  await run('sgdisk', [...args, path]);
  const tmp = await mkdtemp(join(tmpdir(), 'ebsmount-gpt-'));
  try {
    for (const [i, p] of parts.entries()) {
      const img = join(tmp, `part${i + 1}.img`);
      await makeFsImage(p.fs, img, p.sizeMiB, p.srcDir);
      const got = (await lstat(img)).size;
      if (got !== p.sizeMiB * MiB) throw new Error(`${p.fs} image grew to ${got} bytes (asked ${p.sizeMiB} MiB)`);
      await run('dd', [`if=${img}`, `of=${path}`, 'bs=1M', `seek=${partitions[i]!.start / MiB}`, 'conv=notrunc,sparse', 'status=none']);
      await rm(img, { force: true });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { partitions };
}

export function sha256File(path: string, range?: { start: number; end: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    const s = createReadStream(path, range ? { start: range.start, end: range.end - 1 } : {});
    s.on('data', (b) => h.update(b));
    s.on('error', reject);
    s.on('end', () => resolve(h.digest('hex')));
  });
}

export async function treeManifest(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(dir, rel));
    entries.sort();
    for (const name of entries) {
      if (rel === '' && name === 'lost+found') continue;
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(dir, r));
      if (st.isDirectory()) await walk(r);
      else if (st.isSymbolicLink()) out.set(r, `symlink:${await readlink(join(dir, r))}`);
      else if (st.isFile()) out.set(r, await sha256File(join(dir, r)));
    }
  };
  await walk('');
  return out;
}

/** 512-byte blocks allocated on disk (`stat` st_blocks). */
export async function allocatedBlocks(path: string): Promise<number> {
  return (await lstat(path)).blocks;
}
