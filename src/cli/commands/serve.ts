/**
 * `ebsmount serve --data DIR [--host 127.0.0.1] [--port N]`: the local, disk-backed EBS direct
 * API server (src/server), with fault injection for tests and benchmarks.
 *
 * Contract:
 * - Flag values are validated first (`serveOptionsFromArgv`): a bad one is a one-line UserError
 *   (exit 2) before anything starts. A data directory, secret file or address it cannot use is
 *   one line and exit 1, never a stack trace.
 * - Verification keys: --access-key-id or env EBSMOUNT_SERVE_ACCESS_KEY_ID, with the secret from
 *   --secret-access-key-file (yours, 0600), env EBSMOUNT_SERVE_SECRET_ACCESS_KEY or
 *   --secret-access-key (warned: it shows in `ps`). Listening beyond loopback without keys is
 *   warned about.
 * - When ready, prints exactly one line to stdout:
 *   `ebsmount serve: listening on http://HOST:PORT (data DIR)`; logs go to stderr (pino).
 * - SIGTERM / SIGINT close it cleanly (requests in flight finish; every acknowledged write was
 *   already durable, so kill -9 loses nothing acknowledged either).
 */
import { closeSync, fstatSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { openPrivateFile, UnsafePathError } from '../../os/private-path.js';
import type { Argv, CommandModule } from 'yargs';
import { UserError } from '../../errors/user-error.js';
import { createLogger } from '../../util/log.js';
import type { EbsServerOptions } from '../../server/http-server.js';
import { DEFAULT_BLOCK_TOKEN_TTL_S, MAX_BLOCK_TOKEN_TTL_S } from '../../server/tokens.js';
import { DEFAULT_LIMITS } from '../../server/limits.js';
import { DEFAULT_MAX_PENDING_SNAPSHOTS } from '../../ebs/constants.js';

export interface ServeArgv {
  data?: string;
  host?: string;
  port?: number;
  region?: string;
  'access-key-id'?: string;
  'secret-access-key'?: string;
  'secret-access-key-file'?: string;
  'max-connections'?: number;
  'latency-ms'?: number;
  'latency-jitter-ms'?: number;
  'rate-limit'?: number;
  'throttle-rate'?: number;
  'error-rate'?: number;
  'corrupt-rate'?: number;
  'missing-after-start-ms'?: number;
  'token-ttl'?: number;
  'max-pending-snapshots'?: number;
  'timeout-scale'?: number;
  'list-scan-window'?: number;
}

function bad(message: string): UserError {
  return new UserError(`serve: ${message}`, 2);
}

function num(argv: ServeArgv, name: keyof ServeArgv, def: number, check: (v: number) => boolean, what: string): number {
  const raw = argv[name];
  if (raw === undefined) return def;
  const v = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isFinite(v) || !check(v)) throw bad(`--${name} must be ${what} (got '${String(raw)}')`);
  return v;
}

/** Environment variables that may carry the verification keys (so the secret stays out of `ps`). */
export const ENV_ACCESS_KEY_ID = 'EBSMOUNT_SERVE_ACCESS_KEY_ID';
export const ENV_SECRET_ACCESS_KEY = 'EBSMOUNT_SERVE_SECRET_ACCESS_KEY';

function single(argv: ServeArgv, name: keyof ServeArgv): string | undefined {
  const v = argv[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw bad(`--${name} was given more than once`);
  if (typeof v !== 'string' || v.length === 0) throw bad(`--${name} must not be empty`);
  return v;
}

/**
 * Validates the flags and turns them into server options (no side effects). The secret key may
 * come from --secret-access-key, --secret-access-key-file (read by readSecretFile, in the
 * handler) or the environment; the key id from --access-key-id or the environment.
 */
export function serveOptionsFromArgv(argv: ServeArgv, env: NodeJS.ProcessEnv = {}): Omit<EbsServerOptions, 'logger'> & { secretFile?: { path: string; accessKeyId: string } } {
  if (Array.isArray(argv.data)) throw bad('--data was given more than once');
  if (!argv.data || typeof argv.data !== 'string') throw bad('--data DIR is required (where snapshots are stored)');
  if (Array.isArray(argv.host)) throw bad('--host was given more than once');
  const host = argv.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) throw bad('--host must be a host name or address');
  const port = num(argv, 'port', 0, (v) => Number.isInteger(v) && v >= 0 && v <= 65535, 'an integer from 0 to 65535');
  const rate = (name: keyof ServeArgv) => num(argv, name, 0, (v) => v >= 0 && v <= 1, 'a fraction from 0 to 1');
  const nonNeg = (name: keyof ServeArgv) => num(argv, name, 0, (v) => v >= 0, 'a number >= 0');
  const region = single(argv, 'region');
  if (region !== undefined && !/^[a-z]{2}(-[a-z0-9]+)+-\d{1,2}$/.test(region)) {
    throw bad(`--region must be a region name such as us-east-1 (got '${region}')`);
  }
  const akid = single(argv, 'access-key-id') ?? (env[ENV_ACCESS_KEY_ID] || undefined);
  const secretFlag = single(argv, 'secret-access-key');
  const secretFile = single(argv, 'secret-access-key-file');
  if (secretFlag !== undefined && secretFile !== undefined) {
    throw bad('give the secret once: --secret-access-key or --secret-access-key-file, not both');
  }
  const secretEnv = env[ENV_SECRET_ACCESS_KEY] || undefined;
  const hasSecret = secretFlag !== undefined || secretFile !== undefined || secretEnv !== undefined;
  if ((akid === undefined) !== !hasSecret) {
    throw bad(
      `--access-key-id (or ${ENV_ACCESS_KEY_ID}) and a secret (--secret-access-key-file, ${ENV_SECRET_ACCESS_KEY} `
      + 'or --secret-access-key) must be given together',
    );
  }
  const secret = secretFlag ?? (secretFile === undefined ? secretEnv : undefined);
  return {
    dataDir: resolve(argv.data),
    host,
    port,
    region,
    credentials: akid !== undefined && secret !== undefined ? { accessKeyId: akid, secretAccessKey: secret } : undefined,
    secretFile: akid !== undefined && secretFile !== undefined ? { path: resolve(secretFile), accessKeyId: akid } : undefined,
    faults: {
      latencyMs: nonNeg('latency-ms'),
      latencyJitterMs: nonNeg('latency-jitter-ms'),
      rateLimit: nonNeg('rate-limit'),
      throttleRate: rate('throttle-rate'),
      errorRate: rate('error-rate'),
      corruptRate: rate('corrupt-rate'),
      missingAfterStartMs: nonNeg('missing-after-start-ms'),
    },
    tokenTtlSeconds: num(
      argv, 'token-ttl', DEFAULT_BLOCK_TOKEN_TTL_S, (v) => v >= 1 && v <= MAX_BLOCK_TOKEN_TTL_S,
      `a number of seconds from 1 to ${MAX_BLOCK_TOKEN_TTL_S} (100 years)`,
    ),
    limits: {
      maxConnections: num(argv, 'max-connections', DEFAULT_LIMITS.maxConnections, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1'),
    },
    timeoutScale: num(argv, 'timeout-scale', 1, (v) => v > 0, 'a number > 0'),
    maxPendingSnapshots: num(argv, 'max-pending-snapshots', DEFAULT_MAX_PENDING_SNAPSHOTS, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1'),
    listScanWindow: num(argv, 'list-scan-window', 0, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0'),
  };
}

export const serveCommand: CommandModule<object, ServeArgv> = {
  command: 'serve',
  describe: 'Run a local, disk-backed EBS direct API server (for trying ebsmount, rehearsals and tests)',
  builder: (y: Argv<object>) =>
    y
      .usage('$0 serve --data DIR [--host 127.0.0.1] [--port N] [fault options]')
      .option('data', { type: 'string', describe: 'Directory holding the snapshots (created if missing)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on (loopback unless told otherwise)' })
      .option('port', { type: 'number', default: 0, describe: 'Port; 0 picks a free one' })
      .option('access-key-id', { type: 'string', describe: `Verify SigV4 signatures against this key id (or env ${ENV_ACCESS_KEY_ID}), with a secret` })
      .option('secret-access-key-file', { type: 'string', describe: 'File holding the secret key (0600, yours); trailing newline ignored' })
      .option('secret-access-key', { type: 'string', describe: `Secret key (visible in ps: prefer --secret-access-key-file or env ${ENV_SECRET_ACCESS_KEY})` })
      .option('region', { type: 'string', describe: 'With keys: the region credential scopes must name (default: any region)' })
      .option('max-connections', { type: 'number', default: DEFAULT_LIMITS.maxConnections, describe: 'Open connections at once; more are closed on arrival' })
      .option('latency-ms', { type: 'number', default: 0, group: 'Fault injection:', describe: 'Latency added to every request' })
      .option('latency-jitter-ms', { type: 'number', default: 0, group: 'Fault injection:', describe: 'Random extra latency, 0..N ms' })
      .option('rate-limit', { type: 'number', default: 0, group: 'Fault injection:', describe: 'Requests per second per snapshot (0: unlimited; AWS: 1000); beyond: RequestThrottledException' })
      .option('throttle-rate', { type: 'number', default: 0, group: 'Fault injection:', describe: 'Fraction of requests answered RequestThrottledException' })
      .option('error-rate', { type: 'number', default: 0, group: 'Fault injection:', describe: 'Fraction of requests answered 500 InternalServerException' })
      .option('corrupt-rate', { type: 'number', default: 0, group: 'Fault injection:', describe: 'Fraction of GetSnapshotBlock bodies corrupted (headers keep the true checksum)' })
      .option('missing-after-start-ms', { type: 'number', default: 0, group: 'Fault injection:', describe: "Puts into a snapshot younger than this fail with 'snapshot does not exist'" })
      .option('token-ttl', { type: 'number', default: DEFAULT_BLOCK_TOKEN_TTL_S, group: 'Fault injection:', describe: 'Block token lifetime, seconds' })
      .option('max-pending-snapshots', { type: 'number', default: DEFAULT_MAX_PENDING_SNAPSHOTS, describe: 'Pending snapshots allowed at once; beyond: ServiceQuotaExceededException (AWS: 100)' })
      .option('timeout-scale', { type: 'number', default: 1, group: 'Testing:', describe: "Multiplies snapshots' Timeout (e.g. 0.001: 10 minutes become 0.6 s)" })
      .option('list-scan-window', { type: 'number', default: 0, group: 'Testing:', describe: 'Block indexes scanned per listing page (short and empty pages); 0: unbounded' }) as unknown as Argv<ServeArgv>,
  handler: async (argv) => {
    const { secretFile, ...opts } = serveOptionsFromArgv(argv, process.env);
    if (secretFile) opts.credentials = { accessKeyId: secretFile.accessKeyId, secretAccessKey: readSecretFile(secretFile.path) };
    const logger = createLogger();
    if (argv['secret-access-key'] !== undefined) {
      logger.warn(`--secret-access-key shows in the process list: prefer --secret-access-key-file or ${ENV_SECRET_ACCESS_KEY}`);
    }
    if (!isLoopback(opts.host) && !opts.credentials) {
      logger.warn(
        { host: opts.host },
        'listening beyond loopback without --access-key-id: anyone who can reach this address can read and write every snapshot',
      );
    }
    // Handlers first: a signal that arrives while starting, or right after the ready line, still
    // closes the server cleanly.
    const signal = new Promise<NodeJS.Signals>((done) => {
      process.once('SIGTERM', () => done('SIGTERM'));
      process.once('SIGINT', () => done('SIGINT'));
    });
    const { startEbsServer } = await import('../../server/http-server.js');
    const { DataDirInUseError } = await import('../../server/store.js');
    let server: Awaited<ReturnType<typeof startEbsServer>>;
    try {
      server = await startEbsServer({ ...opts, logger });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (err instanceof DataDirInUseError) throw new UserError(`serve: ${opts.dataDir}: ${err.message}`, 1);
      if (err instanceof UnsafePathError) throw new UserError(`serve: ${err.message}`, 1);
      if (code === 'EADDRINUSE') throw new UserError(`serve: ${opts.host}:${opts.port} is already in use`, 1);
      if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new UserError(`serve: cannot listen on ${opts.host}`, 1);
      if (code === 'EACCES' || code === 'EPERM') {
        const path = (err as NodeJS.ErrnoException).path;
        throw new UserError(`serve: ${path !== undefined ? `cannot use ${path}` : `cannot listen on ${opts.host}:${opts.port}`}: permission denied`, 1);
      }
      if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
        // Anything else the system refused (ENOTDIR, EROFS, ENOSPC, EEXIST, ELOOP...): one line.
        throw new UserError(`serve: cannot use ${opts.dataDir}: ${(err as Error).message}`, 1);
      }
      throw err;
    }
    logger.info(
      { url: server.url, dataDir: opts.dataDir, auth: opts.credentials ? 'verify' : 'any-signature', faults: opts.faults },
      'ebsmount serve ready',
    );
    process.stdout.write(`ebsmount serve: listening on ${server.url} (data ${opts.dataDir})\n`);
    logger.info({ signal: await signal }, 'shutting down');
    await server.close();
    logger.info('stopped');
  },
};

/** The secret key from a file: ours, not readable or writable by group/others, one line. */
export function readSecretFile(path: string): string {
  let text: string;
  try {
    const fd = openPrivateFile(path, 'r', 'no');
    try {
      const st = fstatSync(fd);
      if ((st.mode & 0o077) !== 0) {
        throw new UserError(`serve: ${path}: the secret key file is readable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); chmod 600 it`, 1);
      }
      if (st.size > 4096) throw new UserError(`serve: ${path}: not a secret key file (${st.size} bytes)`, 1);
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    if (err instanceof UnsafePathError) throw new UserError(`serve: ${err.message}`, 1);
    throw new UserError(`serve: cannot read the secret key file: ${(err as Error).message}`, 1);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret.length === 0 || secret.includes('\n')) throw new UserError(`serve: ${path}: the secret key file must hold one line, the key`, 1);
  return secret;
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '[::1]') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return /^::ffff:127\./i.test(host);
}
