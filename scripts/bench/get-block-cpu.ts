/**
 * Micro-benchmark: CPU per GetSnapshotBlock on BOTH sides, client and local server, in one run.
 *
 * Starts `node dist/src/cli/main.js serve --data TMP --port 0` (its own temp data dir), puts
 * `--blocks` distinct random blocks into one snapshot (skipped with `--data DIR` when the dir
 * already holds a completed snapshot from an earlier run and `--keep` was given), then reads them
 * `--rounds` times through SdkEbsApi (createEbsApi) with `--concurrency` requests in flight,
 * verifying every block's SHA-256 against the returned checksum (as SnapshotStore does: in the
 * threadpool; the verify time shown is the wait for it).
 *
 * Reports blocks/s, MB/s, client CPU ms per block (process.cpuUsage, verification included; the
 * verification's own time is shown apart) and server CPU ms per block (/proc/PID/stat utime+stime,
 * all threads). Every read carries one long-lived AbortSignal like SnapshotStore's (--no-signal: none). `--client-prof DIR` / `--server-prof DIR`
 * write V8 .cpuprofile files (client: around the read phase only, via node:inspector; server:
 * `--cpu-prof`, written when it exits on SIGTERM). The server is always stopped, also on failure.
 *
 * `--client sdk|lean` picks the path of GetSnapshotBlock (createEbsApi's `client`; default lean);
 * `--pool` lands the lean path's bodies in a BlockPool (given back after verification, as the
 * cache does on eviction).
 *
 * Usage: node dist/scripts/bench/get-block-cpu.js [--blocks 2000] [--rounds 2] [--concurrency 64]
 *        [--warmup 200] [--client lean|sdk] [--pool] [--json] [--client-prof DIR] [--server-prof DIR]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEbsApi } from '../../src/ebs/client-options.js';
import { sha256Owned } from '../../src/ebs/checksum.js';
import { BLOCK_SIZE } from '../../src/ebs/constants.js';
import type { EbsApi } from '../../src/ebs/api.js';
import { BlockPool } from '../../src/ebs/block-pool.js';

const here = dirname(fileURLToPath(import.meta.url));
const MAIN_JS = resolve(here, '../../src/cli/main.js');
const CLK_TCK = 100; // Linux USER_HZ

const { values: args } = parseArgs({
  options: {
    blocks: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '200' },
    json: { type: 'boolean', default: false },
    // Pass one long-lived AbortSignal with every read, as SnapshotStore does.
    'no-signal': { type: 'boolean', default: false },
    client: { type: 'string', default: 'lean' },
    pool: { type: 'boolean', default: false },
    'client-prof': { type: 'string' },
    'server-prof': { type: 'string' },
  },
});
const nBlocks = Number(args.blocks);
const rounds = Number(args.rounds);
const concurrency = Number(args.concurrency);
const warmup = Number(args.warmup);
const clientKind = args.client === 'sdk' ? 'sdk' : 'lean';
const pool = args.pool ? new BlockPool(concurrency + 8) : undefined;

/** [user, system] CPU ms of a process (all its threads: the libuv pool included). */
function procCpuMs(pid: number): [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [(Number(f[11]) * 1000) / CLK_TCK, (Number(f[12]) * 1000) / CLK_TCK];
}

function startServer(dataDir: string, profDir?: string): Promise<{ child: ChildProcess; endpoint: string }> {
  const nodeArgs = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const child = spawn(process.execPath, [...nodeArgs, MAIN_JS, 'serve', '--data', dataDir, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, EBSMOUNT_LOG_LEVEL: 'warn' },
  });
  return new Promise((res, rej) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => rej(new Error(`server did not start: ${err}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/[\w.:[\]-]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res({ child, endpoint: m[1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`server exited (${code}): ${err}`));
    });
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((res) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(kill);
      res();
    });
    child.kill('SIGTERM');
  });
}

async function fill(api: EbsApi): Promise<string> {
  const volumeSizeGiB = Math.max(1, Math.ceil((nBlocks * BLOCK_SIZE) / 2 ** 30));
  const snap = await api.startSnapshot({ volumeSizeGiB, timeoutMinutes: 60 });
  const block = Buffer.allocUnsafe(BLOCK_SIZE);
  randomFillSync(block);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < nBlocks) {
        const i = next++;
        const data = Buffer.from(block);
        data.writeUInt32LE(i, 0); // distinct content per block (no dedup)
        const sum = createHash('sha256').update(data).digest('base64');
        await api.putSnapshotBlock(snap.snapshotId, i, data, sum);
      }
    }),
  );
  await api.completeSnapshot(snap.snapshotId, nBlocks);
  return snap.snapshotId;
}

async function listAll(api: EbsApi, snapshotId: string): Promise<{ index: number; token: string }[]> {
  const out: { index: number; token: string }[] = [];
  let nextToken: string | undefined;
  do {
    const page = await api.listSnapshotBlocks(snapshotId, { nextToken, maxResults: 10_000 });
    out.push(...page.blocks);
    nextToken = page.nextToken;
  } while (nextToken);
  return out;
}

const volumeSignal = args['no-signal'] ? undefined : new AbortController().signal;
if (volumeSignal) setMaxListeners(0, volumeSignal);
let verifyMs = 0;

async function readAll(api: EbsApi, snapshotId: string, blocks: { index: number; token: string }[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < blocks.length) {
        const b = blocks[next++]!;
        const d = await api.getSnapshotBlock(snapshotId, b.index, b.token, { signal: volumeSignal });
        const v0 = performance.now();
        // As SnapshotStore verifies: the body moved to a hash worker and back.
        const h = d.data.length === BLOCK_SIZE ? await sha256Owned(d.data) : undefined;
        verifyMs += performance.now() - v0;
        if (!h || h.digest.toString('base64') !== d.checksum) throw new Error(`checksum mismatch at block ${b.index}`);
        pool?.give(h.data);
      }
    }),
  );
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ebsmount-getcpu-'));
  if (args['server-prof']) await mkdir(args['server-prof'], { recursive: true });
  let server: { child: ChildProcess; endpoint: string } | undefined;
  let api: EbsApi | undefined;
  try {
    server = await startServer(dataDir, args['server-prof']);
    api = createEbsApi({ endpoint: server.endpoint, maxSockets: concurrency + 8, client: clientKind, pool });
    const tFill = performance.now();
    const snapshotId = await fill(api);
    const fillS = (performance.now() - tFill) / 1000;
    const blocks = await listAll(api, snapshotId);
    if (blocks.length !== nBlocks) throw new Error(`listed ${blocks.length} blocks, put ${nBlocks}`);
    // Warm-up: JIT, sockets, page cache.
    await readAll(api, snapshotId, blocks.slice(0, warmup));
    (globalThis as { gc?: () => void }).gc?.();

    let session: Session | undefined;
    if (args['client-prof']) {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const pid = server.child.pid!;
    const sCpu0 = procCpuMs(pid);
    const cCpu0 = process.cpuUsage();
    verifyMs = 0;
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) await readAll(api, snapshotId, blocks);
    const seconds = (performance.now() - t0) / 1000;
    const cCpu = process.cpuUsage(cCpu0);
    const sCpu1 = procCpuMs(pid);
    const sUser = sCpu1[0] - sCpu0[0];
    const sSys = sCpu1[1] - sCpu0[1];
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      await mkdir(args['client-prof']!, { recursive: true });
      await writeFile(join(args['client-prof']!, `client-${Date.now()}.cpuprofile`), JSON.stringify(profile));
      session.disconnect();
    }
    const n = nBlocks * rounds;
    const result = {
      client: clientKind + (pool ? '+pool' : ''),
      blocks: n,
      concurrency,
      seconds: +seconds.toFixed(2),
      blocksPerSecond: +(n / seconds).toFixed(0),
      mbps: +((n * BLOCK_SIZE) / seconds / 1e6).toFixed(1),
      clientCpuMsPerBlock: +((cCpu.user + cCpu.system) / 1000 / n).toFixed(3),
      clientUserMsPerBlock: +(cCpu.user / 1000 / n).toFixed(3),
      clientSysMsPerBlock: +(cCpu.system / 1000 / n).toFixed(3),
      verifyMsPerBlock: +(verifyMs / n).toFixed(3),
      serverCpuMsPerBlock: +((sUser + sSys) / n).toFixed(3),
      serverUserMsPerBlock: +(sUser / n).toFixed(3),
      serverSysMsPerBlock: +(sSys / n).toFixed(3),
      fillSeconds: +fillS.toFixed(1),
    };
    if (args.json) {
      console.log(JSON.stringify(result));
    } else {
      console.log(
        `${result.client} GetSnapshotBlock x${n} (${concurrency} in flight): ${result.blocksPerSecond} blocks/s, ${result.mbps} MB/s; ` +
          `client ${result.clientCpuMsPerBlock} ms CPU/block (user ${result.clientUserMsPerBlock}, sys ${result.clientSysMsPerBlock}; ` +
          `SHA-256 verify ${result.verifyMsPerBlock}); server ${result.serverCpuMsPerBlock} ms CPU/block ` +
          `(user ${result.serverUserMsPerBlock}, sys ${result.serverSysMsPerBlock}); fill ${result.fillSeconds} s`,
      );
    }
  } finally {
    api?.close?.();
    if (server) await stopServer(server.child);
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
