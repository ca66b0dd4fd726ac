/**
 * `npm run soak` (scripts/soak.sh runs this as root in a fresh work dir): a bounded soak of the
 * writable path under faults and crashes, checked byte for byte at the end.
 *
 * What it does, until --minutes (default 10) are up:
 * - An EBS server (scripts/soak/fault-server.ts: `ebsmount serve`'s flags and server) with
 *   --error-rate, --throttle-rate, --corrupt-rate, --latency-ms/--latency-jitter-ms and
 *   --missing-after-start-ms, killed with SIGKILL at random moments (every 15–60 s) and restarted
 *   on the same port and data directory 0.2–3 s later — whatever is running at that moment.
 * - Rounds: mount the current snapshot writable (the real CLI, a daemon, real FUSE), then random
 *   writes (1 byte to 256 KiB, aligned or not, across block boundaries), reads (checked against
 *   the model of everything written so far) and fsyncs on MOUNT/SNAP.img for 3–15 s; then one of:
 *   a clean `ebsmount unmount` (commits); SIGKILL of the daemon in the middle of the I/O; SIGKILL
 *   of the daemon during the unmount's commit. A killed round is resumed with
 *   `ebsmount commit --journal DIR`. The child snapshot is the next round's parent.
 * - The model: an fsync that returned makes every write that completed before it *acknowledged*:
 *   it must be in the child. After a clean unmount every completed write must be in it too. A
 *   write not acknowledged when the daemon died is *uncertain*: each of its bytes may hold the
 *   old or the new value. After a killed round the child is exported and compared: a byte that
 *   differs from the model and is not explained by an uncertain write is LOST; uncertain bytes
 *   take the child's value from then on.
 * - At the end: export the last child and compare the whole volume with the model byte for byte.
 *
 * Prints what it did and survived (ops, faults the server injected, kills, bytes verified, bytes
 * lost) and writes it as JSON to --out (default .soak/last.json). Exit 0 only when no byte was
 * lost and every read returned the model's bytes. --seed replays the same plan of ops and kills
 * (timings still vary).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { prng } from '../../src/util/prng.js';

const BLOCK = 512 * 1024;
const GIB = 1024 ** 3;
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const FAULT_SERVER = fileURLToPath(new URL('./fault-server.js', import.meta.url));

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    seed: { type: 'string' },
    work: { type: 'string' },
    out: { type: 'string', default: '.soak/last.json' },
    'region-mib': { type: 'string', default: '64' },
    'error-rate': { type: 'string', default: '0.03' },
    'throttle-rate': { type: 'string', default: '0.03' },
    'corrupt-rate': { type: 'string', default: '0.02' },
    'latency-ms': { type: 'string', default: '2' },
    'latency-jitter-ms': { type: 'string', default: '8' },
    'missing-after-start-ms': { type: 'string', default: '1500' },
  },
});

const minutes = Number(opt.minutes);
if (!(minutes > 0)) throw new Error(`--minutes must be a number > 0 (got ${opt.minutes})`);
const seed = opt.seed !== undefined ? Number(opt.seed) : Math.floor(Math.random() * 2 ** 31);
const rnd = prng(seed);
const work = resolve(opt.work ?? '.soak/work');
const REGION = Number(opt['region-mib']) * 1024 * 1024;
const VOLUME = GIB;
const FAULT_FLAGS = ['error-rate', 'throttle-rate', 'corrupt-rate', 'latency-ms', 'latency-jitter-ms', 'missing-after-start-ms'] as const;

const env: NodeJS.ProcessEnv = {
  ...process.env,
  XDG_STATE_HOME: join(work, 'state'),
  EBSMOUNT_RUN_DIR: join(work, 'run'),
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

const figures = {
  seed,
  minutes,
  rounds: 0,
  ops: { writes: 0, bytesWritten: 0, reads: 0, bytesRead: 0, readMismatches: 0, readErrors: 0, fsyncs: 0 },
  faults: { errors: 0, throttled: 0, corrupted: 0, missing: 0, rateLimited: 0 },
  kills: { daemonDuringIo: 0, daemonDuringCommit: 0, server: 0 },
  commits: { cleanUnmounts: 0, resumedWithCommitJournal: 0, commitRetries: 0 },
  bytesAcknowledged: 0,
  uncertainWrites: 0,
  uncertainBytesNew: 0,
  bytesVerified: 0,
  bytesLost: 0,
  lostDetails: [] as string[],
  finalSnapshot: '',
  durationS: 0,
};

const log = (msg: string) => process.stderr.write(`soak: ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const randInt = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));

function randomBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = (rnd() * 2 ** 32) >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

// ---------------------------------------------------------------- processes

interface Exec { code: number | null; stdout: string; stderr: string }

function exec(cmd: string, args: string[], timeoutMs = 600_000): Promise<Exec> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      done({ code: -1, stdout, stderr: String(e) });
    });
  });
}

const cli = (args: string[], timeoutMs?: number) => exec(process.execPath, [CLI, ...args], timeoutMs);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

class SoakServer {
  private child: ChildProcess | undefined;
  private killer: NodeJS.Timeout | undefined;
  private restarting: Promise<void> | undefined;
  private stopped = false;
  private readonly countsFile = join(work, 'faults.jsonl');
  endpoint = '';
  constructor(private readonly port: number) {}

  async start(): Promise<void> {
    const args = [FAULT_SERVER, '--counts', this.countsFile, '--data', join(work, 'data'), '--port', String(this.port)];
    for (const f of FAULT_FLAGS) args.push(`--${f}`, String(opt[f]));
    for (let attempt = 1; ; attempt++) {
      const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const logFd = openSync(join(work, 'server.log'), 'a');
      child.stderr!.on('data', (d: Buffer) => {
        try {
          writeSync(logFd, d);
        } catch {
          // the log is best effort
        }
      });
      const ready = await new Promise<boolean>((done) => {
        let out = '';
        child.stdout!.on('data', (d) => {
          out += d;
          if (out.includes('listening on')) done(true);
        });
        child.on('exit', () => done(false));
      });
      if (ready) {
        this.child = child;
        this.endpoint = `http://127.0.0.1:${this.port}`;
        child.on('exit', () => closeSync(logFd));
        return;
      }
      closeSync(logFd);
      if (attempt >= 20) throw new Error('the soak server does not start (see server.log)');
      await sleep(500);
    }
  }

  /** SIGKILL at random moments (every 15–60 s), restart 0.2–3 s later. */
  startKiller(): void {
    const next = () => {
      this.killer = setTimeout(() => {
        this.restarting = (async () => {
          if (this.stopped) return;
          this.child?.kill('SIGKILL');
          await new Promise((r) => this.child?.once('exit', r) ?? r(undefined));
          figures.kills.server++;
          log(`killed the server (kill -9), #${figures.kills.server}`);
          await sleep(randInt(200, 3000));
          await this.start();
        })();
        void this.restarting.then(() => {
          this.restarting = undefined;
          if (!this.stopped) next();
        });
      }, randInt(15_000, 60_000));
    };
    next();
  }

  /** Stops the killer and makes sure the server is up. */
  async calm(): Promise<void> {
    this.stopped = true;
    if (this.killer) clearTimeout(this.killer);
    await this.restarting;
    if (!this.child || this.child.exitCode !== null) await this.start();
  }

  async stop(): Promise<void> {
    await this.calm();
    this.child?.kill('SIGTERM');
    await new Promise((r) => (this.child?.exitCode !== null ? r(undefined) : this.child?.once('exit', r)));
  }

  /** Sums the last counters line of every server run. */
  faultTotals(): typeof figures.faults {
    const totals = { errors: 0, throttled: 0, corrupted: 0, missing: 0, rateLimited: 0 };
    if (!existsSync(this.countsFile)) return totals;
    let prev: Record<string, number> | undefined;
    const add = (c: Record<string, number>) => {
      for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += c[k] ?? 0;
    };
    for (const line of readFileSync(this.countsFile, 'utf8').split('\n')) {
      if (!line) continue;
      const c = JSON.parse(line) as Record<string, number>;
      // Counters restart at 0 with each server run: a line smaller than the previous one starts a run.
      if (prev && Object.keys(c).some((k) => (c[k] ?? 0) < (prev![k] ?? 0))) add(prev);
      prev = c;
    }
    if (prev) add(prev);
    return totals;
  }
}

// ---------------------------------------------------------------- the model

interface PendingWrite { off: number; data: Buffer }

/** The volume's first REGION bytes as every acknowledged write left them (the rest is zeros). */
const model = Buffer.alloc(REGION);
/** The model plus every write that completed (what reads must return while mounted). */
let current = Buffer.alloc(REGION);

function apply(buf: Buffer, w: PendingWrite): void {
  w.data.copy(buf, w.off);
}

/** Compares a region image with the model; uncertain writes may explain differences. Adopts them. */
function reconcile(actual: Buffer, uncertain: PendingWrite[], where: string): void {
  let lost = 0;
  let firstLost = -1;
  let adopted = 0;
  for (let i = 0; i < REGION; i++) {
    if (actual[i] === model[i]) continue;
    let explained = false;
    for (let k = uncertain.length - 1; k >= 0; k--) {
      const w = uncertain[k]!;
      if (i >= w.off && i < w.off + w.data.length && w.data[i - w.off] === actual[i]) {
        explained = true;
        break;
      }
    }
    if (explained) {
      adopted++;
      model[i] = actual[i]!;
    } else {
      lost++;
      if (firstLost < 0) firstLost = i;
    }
  }
  figures.uncertainBytesNew += adopted;
  if (lost > 0) {
    figures.bytesLost += lost;
    const msg = `${where}: ${lost} bytes differ from the acknowledged writes (first at byte ${firstLost}, block ${Math.floor(firstLost / BLOCK)})`;
    figures.lostDetails.push(msg);
    log(`LOST ${msg}`);
    // Continue from what the snapshot holds, so one loss is counted once.
    actual.copy(model, 0, 0, REGION);
  }
}

// ---------------------------------------------------------------- EBS helpers

async function withRetries(what: string, fn: () => Promise<Exec>, ok: (r: Exec) => boolean, tries = 15): Promise<Exec> {
  let r: Exec | undefined;
  for (let attempt = 1; attempt <= tries; attempt++) {
    r = await fn();
    if (ok(r)) return r;
    log(`${what} failed (attempt ${attempt}): ${r.stderr.trim().split('\n').pop()}`);
    await sleep(2000);
  }
  throw new Error(`${what} failed ${tries} times: ${r?.stderr.trim()}`);
}

async function exportRegion(server: SoakServer, snap: string, file: string, whole = false): Promise<Buffer> {
  await withRetries(`export ${snap}`, () => cli(['export', snap, file, '--force', '--endpoint', server.endpoint]), (r) => r.code === 0);
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(REGION);
    let got = 0;
    while (got < REGION) {
      const n = readSync(fd, buf, got, REGION - got, got);
      if (n === 0) break;
      got += n;
    }
    if (whole) {
      // Past the region: zeros only.
      const chunk = Buffer.alloc(8 * 1024 * 1024);
      for (let pos = REGION; pos < VOLUME; ) {
        const n = readSync(fd, chunk, 0, Math.min(chunk.length, VOLUME - pos), pos);
        if (n === 0) throw new Error(`export ${file} is shorter than the volume`);
        for (let i = 0; i < n; i++) {
          if (chunk[i] !== 0) {
            figures.bytesLost++;
            if (figures.lostDetails.length < 20) figures.lostDetails.push(`final: byte ${pos + i} past the written region is not zero`);
          }
        }
        pos += n;
      }
      figures.bytesVerified = VOLUME;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

async function commitJournal(server: SoakServer, journal: string, parent: string): Promise<string> {
  for (let attempt = 1; attempt <= 20; attempt++) {
    const r = await cli(['commit', '--journal', journal, '--endpoint', server.endpoint]);
    if (r.code === 0) {
      const id = r.stdout.trim();
      return id || parent; // "no changes": the parent stays current
    }
    figures.commits.commitRetries++;
    log(`commit --journal failed (attempt ${attempt}): ${r.stderr.trim().split('\n').pop()}`);
    const restart = /state error|--restart/.test(r.stderr);
    if (restart) {
      const rr = await cli(['commit', '--journal', journal, '--restart', '--endpoint', server.endpoint]);
      if (rr.code === 0) return rr.stdout.trim() || parent;
    }
    await sleep(2000);
  }
  throw new Error(`commit --journal ${journal} kept failing`);
}

async function isMounted(dir: string): Promise<boolean> {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);
}

async function daemonPid(mnt: string): Promise<number> {
  const r = await cli(['status', mnt, '--json']);
  if (r.code !== 0) throw new Error(`status ${mnt}: ${r.stderr}`);
  const s = JSON.parse(r.stdout) as { pid: number } | { pid: number }[];
  return Array.isArray(s) ? s[0]!.pid : s.pid;
}

// ---------------------------------------------------------------- one round

type Ending = 'unmount' | 'kill-during-io' | 'kill-during-commit';

async function round(server: SoakServer, k: number, parent: string, deadline: number): Promise<string> {
  const mnt = join(work, 'mnt', `r${k}`);
  const journal = join(work, 'journals', `r${k}`);
  mkdirSync(mnt, { recursive: true });
  const ending: Ending = ((x) => (x < 0.4 ? 'unmount' : x < 0.75 ? 'kill-during-io' : 'kill-during-commit'))(rnd());
  const opsMs = Math.min(randInt(3_000, 15_000), Math.max(1_000, deadline - Date.now()));
  await withRetries(`mount ${parent}`, () => cli([parent, mnt, '--writable', '--journal-dir', journal, '--no-partitions', '--endpoint', server.endpoint]), (r) => r.code === 0);
  const pid = await daemonPid(mnt);
  log(`round ${k}: ${parent} mounted (daemon ${pid}), ${ending} after ${(opsMs / 1000).toFixed(1)} s`);

  const fh: FileHandle = await open(join(mnt, `${parent}.img`), 'r+');
  let completed: PendingWrite[] = []; // completed since the last acknowledged fsync
  const uncertain: PendingWrite[] = [];
  let inflight: PendingWrite | undefined;
  let dead = false;
  const killTimer = ending === 'kill-during-io'
    ? setTimeout(() => {
      dead = true;
      process.kill(pid, 'SIGKILL');
      figures.kills.daemonDuringIo++;
    }, randInt(300, opsMs))
    : undefined;

  const t0 = Date.now();
  try {
    while (Date.now() - t0 < opsMs && !dead) {
      const x = rnd();
      if (x < 0.55) {
        const kind = rnd();
        const len = kind < 0.3 ? randInt(1, 4096) : kind < 0.6 ? 4096 * randInt(1, 16) : randInt(4096, 256 * 1024);
        const off = kind >= 0.3 && kind < 0.6 ? 4096 * randInt(0, (REGION - len) / 4096) : randInt(0, REGION - len);
        const w = { off, data: randomBytes(len) };
        inflight = w;
        await fh.write(w.data, 0, len, off);
        inflight = undefined;
        completed.push(w);
        apply(current, w);
        figures.ops.writes++;
        figures.ops.bytesWritten += len;
      } else if (x < 0.9) {
        const len = randInt(1, 1024 * 1024);
        const off = randInt(0, REGION - len);
        const buf = Buffer.alloc(len);
        const { bytesRead } = await fh.read(buf, 0, len, off);
        if (dead) break; // a read cut by the kill may return short: not a wrong answer
        figures.ops.reads++;
        figures.ops.bytesRead += bytesRead;
        if (bytesRead !== len || !buf.equals(current.subarray(off, off + len))) {
          figures.ops.readMismatches++;
          log(`READ MISMATCH round ${k}: ${len} bytes at ${off} (${bytesRead} read)`);
        }
      } else {
        const acked = completed;
        await fh.sync();
        for (const w of acked) {
          apply(model, w);
          figures.bytesAcknowledged += w.data.length;
        }
        completed = completed.slice(acked.length);
        figures.ops.fsyncs++;
      }
    }
  } catch (err) {
    if (!dead) {
      figures.ops.readErrors++;
      log(`I/O error in round ${k} with the daemon alive: ${(err as Error).message}`);
    }
  }
  if (killTimer) clearTimeout(killTimer);
  await fh.close().catch(() => undefined);
  if (inflight) uncertain.push(inflight);

  let child: string;
  if (ending === 'kill-during-io' && dead) {
    uncertain.push(...completed);
    await exec('umount', ['-l', mnt]);
    figures.commits.resumedWithCommitJournal++;
    child = await commitJournal(server, journal, parent);
  } else if (ending === 'kill-during-commit') {
    uncertain.push(...completed);
    const unmount = exec(process.execPath, [CLI, 'unmount', mnt]);
    await sleep(randInt(50, 3000));
    try {
      process.kill(pid, 'SIGKILL');
      figures.kills.daemonDuringCommit++;
    } catch {
      // already gone: the commit finished first
    }
    const r = await unmount;
    if (await isMounted(mnt)) await exec('umount', ['-l', mnt]);
    const printed = r.code === 0 ? r.stdout.trim() : '';
    figures.commits.resumedWithCommitJournal++;
    // Resume (a commit that completed prints the same child again and creates nothing).
    child = await commitJournal(server, journal, parent);
    if (printed && printed !== child) throw new Error(`unmount printed ${printed} but commit --journal gives ${child}`);
  } else {
    // Clean unmount: everything that completed must be in the child.
    for (const w of completed) apply(model, w);
    const r = await exec(process.execPath, [CLI, 'unmount', mnt], 900_000);
    if (r.code === 0) {
      child = r.stdout.trim() || parent;
      figures.commits.cleanUnmounts++;
    } else {
      log(`unmount failed: ${r.stderr.trim().split('\n').pop()}; resuming with commit --journal`);
      if (await isMounted(mnt)) await exec('umount', ['-l', mnt]);
      figures.commits.resumedWithCommitJournal++;
      child = await commitJournal(server, journal, parent);
    }
  }
  if (uncertain.length > 0) {
    figures.uncertainWrites += uncertain.length;
    const actual = await exportRegion(server, child, join(work, 'check.img'));
    reconcile(actual, uncertain, `round ${k} (${ending}, child ${child})`);
  }
  current = Buffer.from(model);
  log(`round ${k}: child ${child}`);
  return child;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = Date.now();
  const deadline = started + minutes * 60_000;
  for (const d of ['data', 'state', 'run', 'mnt', 'journals']) mkdirSync(join(work, d), { recursive: true, mode: 0o700 });
  log(`seed ${seed}, ${minutes} min, work ${work}`);
  const server = new SoakServer(await freePort());
  await server.start();

  // The base snapshot: random data in the first half of the region, zeros after.
  const base = randomBytes(REGION / 2);
  base.copy(model, 0);
  const baseFile = join(work, 'base.img');
  writeFileSync(baseFile, Buffer.concat([base, Buffer.alloc(REGION / 2)]), { mode: 0o600 });
  const imp = await withRetries('import', () => cli(['import', baseFile, '--endpoint', server.endpoint]), (r) => r.code === 0);
  let snap = imp.stdout.trim();
  current = Buffer.from(model);
  log(`base snapshot ${snap}`);

  server.startKiller();
  let k = 0;
  try {
    while (Date.now() < deadline - 5_000) {
      snap = await round(server, ++k, snap, deadline);
      figures.rounds = k;
    }
  } finally {
    await server.calm();
  }
  // Final check: the whole volume of the last child against the model.
  const finalImage = await exportRegion(server, snap, join(work, 'final.img'), true);
  reconcile(finalImage, [], `final (${snap})`);
  figures.finalSnapshot = snap;
  figures.faults = server.faultTotals();
  figures.durationS = Math.round((Date.now() - started) / 1000);
  await server.stop();

  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  const f = figures;
  const lines = [
    `soak: ${f.durationS} s, seed ${f.seed}, ${f.rounds} rounds (mount writable → I/O → unmount or kill -9 → commit)`,
    `  ops: ${f.ops.writes} writes (${mib(f.ops.bytesWritten)}), ${f.ops.reads} reads (${mib(f.ops.bytesRead)}, ${f.ops.readMismatches} wrong), ${f.ops.fsyncs} fsyncs; I/O errors with the daemon alive: ${f.ops.readErrors}`,
    `  faults injected by the server: ${f.faults.errors} 500 errors, ${f.faults.throttled} throttles, ${f.faults.corrupted} corrupted bodies, ${f.faults.missing} 'snapshot does not exist' puts`,
    `  kills: ${f.kills.daemonDuringIo} daemon during I/O, ${f.kills.daemonDuringCommit} daemon during commit, ${f.kills.server} server (kill -9)`,
    `  commits: ${f.commits.cleanUnmounts} clean unmounts, ${f.commits.resumedWithCommitJournal} resumed with commit --journal (${f.commits.commitRetries} retried)`,
    `  acknowledged (fsync'ed) bytes: ${mib(f.bytesAcknowledged)}; unacknowledged writes cut by a kill: ${f.uncertainWrites} (${f.uncertainBytesNew} of their bytes made it)`,
    `  bytes verified: ${f.bytesVerified} (final export of ${f.finalSnapshot}, byte for byte against the model)`,
    `  bytes lost: ${f.bytesLost}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  mkdirSync(dirname(resolve(opt.out!)), { recursive: true });
  writeFileSync(resolve(opt.out!), `${JSON.stringify(figures, null, 2)}\n`);
  process.exitCode = f.bytesLost === 0 && f.ops.readMismatches === 0 && f.ops.readErrors === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`soak: FAILED: ${(err as Error).stack ?? String(err)}\n`);
  process.stdout.write(`${JSON.stringify(figures)}\n`);
  process.exitCode = 1;
});
