/**
 * runMount: what `ebsmount [mount] SNAP MNT` does.
 *
 * 1. Validate before doing anything: option values, the snapshot id, the mountpoint, FUSE, the
 *    log file; with --allow-other, say in one line (stderr) what it exposes.
 * 2. Without --foreground (and not already the daemon): spawn the detached daemon
 *    (spawn-daemon.ts) and print `mounted SNAP at MNT (log: PATH)` once it reports the mount live,
 *    or its one-line error (non-zero exit, nothing mounted).
 * 3. As the daemon (--daemon-fd N) or in the foreground: open the snapshot, mount, report
 *    readiness, serve until unmounted (ebsmount unmount, umount, fusermount -u, SIGINT/SIGTERM),
 *    then exit with the shutdown's code. Foreground logs go to the terminal (pretty), the
 *    daemon's to its log file.
 */
import { resolve } from 'node:path';
import { BLOCK_SIZE, isValidSnapshotId } from '../ebs/constants.js';
import { UserError } from '../errors/user-error.js';
import { apiFromArgv, endpointFromArgv, type AwsArgs } from '../ebs/connect.js';
import { toUserError } from '../errors/describe-error.js';
import { createLogger, type Logger } from '../util/log.js';
import { MountDaemon, type ShutdownResult } from './daemon.js';
import { MAX_CONCURRENCY, MOUNT_DEFAULTS, parseCacheSize, parseLogLevel, parsePositiveInt, parseSize, parseTags, type MountConfig } from './mount-options.js';
import { defaultJournalRoot } from '../writeback/paths.js';
import { LOW_JOURNAL_SPACE_BYTES, spaceWarning } from '../writeback/free-space.js';
import { defaultLogFile } from './paths.js';
import { checkFuse, checkLogFile, checkMountpoint, checkSnapshotId, memoryLimitBytes } from './preflight.js';
import { ReadinessPipe } from './readiness.js';
import { MountRegistry } from './registry.js';
import { spawnDaemon } from './spawn-daemon.js';

export interface MountArgv extends AwsArgs {
  snapshot: string;
  mountpoint: string;
  foreground?: boolean;
  cacheSize?: string | number;
  readAhead?: string | number;
  maxConcurrency?: number;
  requestRate?: number;
  allowOther?: boolean;
  logFile?: string;
  logLevel?: string;
  writable?: boolean;
  description?: string;
  tag?: string | string[];
  journalDir?: string;
  uploadConcurrency?: number;
  discard?: boolean;
  partitions?: boolean;
  diskCache?: string;
  diskCacheSize?: string | number;
  base?: string;
  daemonFd?: number;
  /** More positionals: further snapshots, the mountpoint last. */
  more?: string[];
}

/** Validates everything that can be checked without I/O on EBS; returns the config. */
export function buildMountConfig(argv: MountArgv, memoryBytes = memoryLimitBytes()): MountConfig {
  // SNAP [SNAP...] MOUNTPOINT: the mountpoint is the last positional.
  const positionals = [argv.snapshot, argv.mountpoint, ...(argv.more ?? [])].map(String);
  const mountpoint = positionals.pop()!;
  const snapshotIds = positionals;
  for (const id of snapshotIds) checkSnapshotId(id);
  const twice = snapshotIds.find((id, k) => snapshotIds.indexOf(id) !== k);
  if (twice) throw new UserError(`${twice} is given twice`, 2);
  const config: MountConfig = {
    snapshotId: snapshotIds[0]!,
    snapshotIds,
    mountpoint,
    foreground: Boolean(argv.foreground),
    cacheSizeBytes: parseCacheSize(argv.cacheSize ?? MOUNT_DEFAULTS.cacheSize, memoryBytes),
    readAheadBytes: parseSize(argv.readAhead ?? MOUNT_DEFAULTS.readAhead, 'read-ahead'),
    maxConcurrency: parsePositiveInt(argv.maxConcurrency ?? MOUNT_DEFAULTS.maxConcurrency, 'max-concurrency', MAX_CONCURRENCY),
    requestRate: parsePositiveInt(argv.requestRate ?? MOUNT_DEFAULTS.requestRate, 'request-rate'),
    allowOther: Boolean(argv.allowOther),
    // Absolute: the daemon leaves the caller's working directory (so it never keeps it busy).
    logFile: argv.logFile ? resolve(argv.logFile) : null,
    logLevel: parseLogLevel(argv.logLevel),
    writable: Boolean(argv.writable),
    description: argv.description,
    tags: parseTags(argv.tag),
    journalDir: argv.journalDir ? resolve(argv.journalDir) : undefined,
    uploadConcurrency: parsePositiveInt(argv.uploadConcurrency ?? MOUNT_DEFAULTS.uploadConcurrency, 'upload-concurrency', MAX_CONCURRENCY),
    discard: Boolean(argv.discard),
    partitions: argv.partitions !== false,
    diskCacheDir: argv.diskCache ? resolve(argv.diskCache) : undefined,
    diskCacheSizeBytes: parseSize(argv.diskCacheSize ?? MOUNT_DEFAULTS.diskCacheSize, 'disk-cache-size'),
    base: argv.base,
  };
  if (snapshotIds.length > 1 && config.writable) throw new UserError('--writable mounts one snapshot: give a single snapshot id', 2);
  // Without a disk cache a base can only be another image of the same mount.
  checkCacheOptions(config, snapshotIds.length > 1 ? snapshotIds : []);
  if (!config.writable && (config.description !== undefined || config.tags.length || config.journalDir !== undefined)) {
    throw new UserError('--description, --tag and --journal-dir apply only to --writable mounts', 2);
  }
  return config;
}

/** --base must be a snapshot id, and its blocks must be somewhere local: the disk cache. */
export function checkCacheOptions(config: { base?: string; diskCacheDir?: string; diskCacheSizeBytes?: number }, mounted: string[] = []): void {
  if (config.base !== undefined) {
    if (!isValidSnapshotId(config.base)) throw new UserError(`--base '${config.base}' is not a valid snapshot id`, 2);
    if (!config.diskCacheDir && !mounted.includes(config.base)) {
      throw new UserError('--base needs --disk-cache (the base snapshot\'s blocks are looked up there), or the base mounted alongside', 2);
    }
  }
  if (config.diskCacheDir && (config.diskCacheSizeBytes ?? BLOCK_SIZE) < BLOCK_SIZE) {
    throw new UserError(`--disk-cache-size must be at least one block (512K)`, 2);
  }
}

export async function runMount(argv: MountArgv): Promise<void> {
  const config = buildMountConfig(argv);
  config.mountpoint = checkMountpoint(config.mountpoint);
  checkFuse();
  if (config.logFile) checkLogFile(config.logFile);
  if (config.allowOther && argv.daemonFd === undefined) process.stderr.write(`ebsmount: ${allowOtherWarning(config)}\n`);

  if (config.writable && argv.daemonFd === undefined) {
    const warning = await spaceWarning(config.journalDir ?? defaultJournalRoot(), LOW_JOURNAL_SPACE_BYTES).catch(() => undefined);
    if (warning) process.stderr.write(`ebsmount: warning: ${warning}\n`);
  }
  if (!config.foreground && argv.daemonFd === undefined) {
    const logFile = config.logFile ?? defaultLogFile(config.snapshotId);
    if (!config.logFile) checkLogFile(logFile, { privateDir: true });
    const args = [...process.argv.slice(2), ...(config.logFile ? [] : ['--log-file', logFile]), '--daemon-fd', '3'];
    // Disk-cache reads are file reads and hashes in libuv's threadpool (default 4 threads): more
    // threads keep more of them in flight (measured: +50 % on a cold re-read, 2 cores).
    const env = config.diskCacheDir && !process.env.UV_THREADPOOL_SIZE ? { ...process.env, UV_THREADPOOL_SIZE: '16' } : undefined;
    const msg = await spawnDaemon({ args, logFile, env });
    if (!msg.ok) throw new UserError(msg.message, msg.exitCode || 1);
    process.stdout.write(`mounted ${(config.snapshotIds ?? [config.snapshotId]).join(", ")} at ${config.mountpoint} (log: ${logFile})\n`);
    return;
  }
  await serve(config, argv);
}

/** One line: what --allow-other exposes (the image files become readable by every local user). */
export function allowOtherWarning(config: Pick<MountConfig, 'snapshotId' | 'snapshotIds' | 'mountpoint'>): string {
  const snaps = (config.snapshotIds ?? [config.snapshotId]).join(', ');
  return `warning: --allow-other: every user of this machine can read the whole disk of ${snaps} under ${config.mountpoint} (image files mode 0444; writes stay yours)`;
}

/** The daemon proper (also the --foreground mode). Never returns: exits the process. */
async function serve(config: MountConfig, argv: MountArgv): Promise<never> {
  const pipe = argv.daemonFd !== undefined ? new ReadinessPipe(argv.daemonFd) : undefined;
  const toTerminal = config.foreground && !config.logFile;
  const logger = toTerminal ? createLogger({ level: config.logLevel, pretty: Boolean(process.stderr.isTTY) }) : createLogger({ level: config.logLevel, file: config.logFile ?? undefined });
  installCrashGuards(logger);
  // Signals are caught from the start: one that arrives while mounting unmounts right after.
  let daemonRef: MountDaemon | undefined;
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!daemonRef) {
      interrupted ??= sig;
      logger.info({ signal: sig }, 'signal while mounting: will unmount as soon as mounted');
      return;
    }
    logger.info({ signal: sig }, 'signal: unmounting');
    daemonRef.shutdown('signal', { allowLazy: true }).catch((err: unknown) => logger.error({ err: (err as Error).message }, 'unmount on signal failed'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', () => logger.info('SIGHUP ignored'));
  let daemon: MountDaemon;
  try {
    const api = apiFromArgv({ ...argv, concurrency: config.maxConcurrency } as AwsArgs & { concurrency: number }, logger);
    logger.info({ snapshotId: config.snapshotId, mountpoint: config.mountpoint, writable: config.writable, endpoint: endpointFromArgv(argv) }, 'mounting');
    daemon = await MountDaemon.start(config, {
      api,
      logger,
      registry: new MountRegistry(),
      logFile: config.logFile,
      endpoint: endpointFromArgv(argv),
      region: argv.region,
    });
  } catch (err) {
    const ue = toUserError(err, { snapshotId: config.snapshotId, endpoint: endpointFromArgv(argv) });
    logger.error({ err: ue.message }, 'mount failed');
    pipe?.send({ ok: false, message: ue.message, exitCode: ue.exitCode });
    await flushLogger(logger);
    // Exit here: SDK keep-alive sockets must not keep a failed daemon around.
    process.stderr.write(`ebsmount: ${ue.message}\n`);
    process.exit(ue.exitCode);
  }

  daemonRef = daemon;
  if (interrupted) {
    pipe?.send({ ok: false, message: `interrupted (${interrupted}) while mounting; unmounted again`, exitCode: 130 });
    onSignal(interrupted);
  }
  if (pipe) process.chdir('/');
  pipe?.send({ ok: true, pid: process.pid, snapshotId: config.snapshotId, mountpoint: config.mountpoint, imagePath: daemon.imagePath, log: config.logFile });
  if (config.foreground) {
    process.stdout.write(`mounted ${config.snapshotId} at ${config.mountpoint}: ${daemon.imagePath} (foreground; Ctrl-C or ebsmount unmount ends it)\n`);
  }
  const result: ShutdownResult = await daemon.done;
  if (config.foreground) {
    if (result.snapshotId) process.stdout.write(`${result.snapshotId}\n`);
    process.stderr.write(`ebsmount: ${result.message}\n`);
  }
  await daemon.drainControl();
  await flushLogger(logger);
  process.exit(result.exitCode);
}

function installCrashGuards(logger: Logger): void {
  // A FUSE server that dies leaves a dead mount behind (ENOTCONN): log and keep serving.
  process.on('uncaughtException', (err) => logger.error({ err: err.stack ?? err.message }, 'uncaught exception'));
  process.on('unhandledRejection', (err) => logger.error({ err: err instanceof Error ? (err.stack ?? err.message) : String(err) }, 'unhandled rejection'));
}

export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2_000);
    try {
      logger.flush(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}
