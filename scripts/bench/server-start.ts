/**
 * How long `ebsmount serve` takes to start on a data directory holding many blocks:
 * `node dist/scripts/bench/server-start.js [BLOCKS=1000000]`.
 *
 * Writes a metadata log as the server does (CRC-framed JSON lines: one completed snapshot of
 * 1,024 GiB holding BLOCKS distinct blocks; block files are not needed to start), then starts the
 * real CLI three times and prints the time from spawn to its `listening on` line (median) and
 * the server's peak RSS. Cleans up its temp directory.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';

const MAIN_JS = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const blocks = Number(process.argv[2] ?? 1_000_000);

function line(record: unknown): string {
  const json = JSON.stringify(record);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

async function writeLog(dir: string): Promise<void> {
  const fh = await open(join(dir, 'metadata.log'), 'w', 0o600);
  const id = 'snap-0123456789abcdef0';
  const at = Date.now();
  await fh.write(line({ t: 'start', id, volumeSize: 1024, params: '[1024,null,null,null,null,null,null]', timeout: 60, at }));
  let chunk = '';
  for (let i = 0; i < blocks; i++) {
    chunk += line({ t: 'put', id, i: i * 2, sha: randomBytes(32).toString('hex'), at });
    if (chunk.length > 1 << 20) {
      await fh.write(chunk);
      chunk = '';
    }
  }
  chunk += line({ t: 'status', id, status: 'completed', at });
  await fh.write(chunk);
  await fh.close();
}

function startOnce(dir: string): Promise<{ ms: number; rssMiB: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [MAIN_JS, 'serve', '--data', dir, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, EBSMOUNT_LOG_LEVEL: 'warn' },
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (!out.includes('listening on')) return;
      const ms = performance.now() - t0;
      let rssMiB = 0;
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        rssMiB = Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
      } catch {
        /* gone */
      }
      child.once('exit', () => resolve({ ms, rssMiB }));
      child.kill('SIGTERM');
    });
    child.once('exit', (code) => {
      if (!out.includes('listening on')) reject(new Error(`serve exited (${code}): ${err}`));
    });
  });
}

const dir = await mkdtemp(join(tmpdir(), 'ebsmount-start-'));
try {
  await writeLog(dir);
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await startOnce(dir));
  const sorted = runs.map((r) => r.ms).sort((a, b) => a - b);
  console.log(
    `serve start with ${blocks.toLocaleString('en-US')} blocks: median ${Math.round(sorted[1]!)} ms `
    + `(${runs.map((r) => Math.round(r.ms)).join(', ')} ms), peak RSS ${Math.max(...runs.map((r) => r.rssMiB))} MiB`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
