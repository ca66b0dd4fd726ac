/**
 * `ebsmount serve --data DIR [--host 127.0.0.1] [--port N]`: the local, disk-backed EBS direct
 * API server (src/server), with fault injection for tests and benchmarks.
 *
 * Contract:
 * - Flag values are validated first (`serveOptionsFromArgv`): a bad one is a one-line UserError
 *   (exit 2) before anything starts.
 * - When ready, prints exactly one line to stdout:
 *   `ebsmount serve: listening on http://HOST:PORT (data DIR)`; logs go to stderr (pino).
 * - SIGTERM / SIGINT close it cleanly (requests in flight finish; every acknowledged write was
 *   already durable, so kill -9 loses nothing acknowledged either).
 */
import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { UserError } from '../../errors/user-error.js';
import { createLogger } from '../../util/log.js';
import type { EbsServerOptions } from '../../server/http-server.js';
import { DEFAULT_BLOCK_TOKEN_TTL_S } from '../../server/tokens.js';
import { DEFAULT_MAX_PENDING_SNAPSHOTS } from '../../ebs/constants.js';

export interface ServeArgv {
  data?: string;
  host?: string;
  port?: number;
  'access-key-id'?: string;
  'secret-access-key'?: string;
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

/** Validates the flags and turns them into server options (no side effects). */
export function serveOptionsFromArgv(argv: ServeArgv): Omit<EbsServerOptions, 'logger'> {
  if (!argv.data || typeof argv.data !== 'string') throw bad('--data DIR is required (where snapshots are stored)');
  const host = argv.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) throw bad('--host must be a host name or address');
  const port = num(argv, 'port', 0, (v) => Number.isInteger(v) && v >= 0 && v <= 65535, 'an integer from 0 to 65535');
  const rate = (name: keyof ServeArgv) => num(argv, name, 0, (v) => v >= 0 && v <= 1, 'a fraction from 0 to 1');
  const nonNeg = (name: keyof ServeArgv) => num(argv, name, 0, (v) => v >= 0, 'a number >= 0');
  const akid = argv['access-key-id'];
  const secret = argv['secret-access-key'];
  if ((akid === undefined) !== (secret === undefined)) {
    throw bad('--access-key-id and --secret-access-key must be given together');
  }
  if (akid !== undefined && (String(akid).length === 0 || String(secret).length === 0)) {
    throw bad('--access-key-id and --secret-access-key must not be empty');
  }
  return {
    dataDir: resolve(argv.data),
    host,
    port,
    credentials: akid !== undefined ? { accessKeyId: String(akid), secretAccessKey: String(secret) } : undefined,
    faults: {
      latencyMs: nonNeg('latency-ms'),
      latencyJitterMs: nonNeg('latency-jitter-ms'),
      rateLimit: nonNeg('rate-limit'),
      throttleRate: rate('throttle-rate'),
      errorRate: rate('error-rate'),
      corruptRate: rate('corrupt-rate'),
      missingAfterStartMs: nonNeg('missing-after-start-ms'),
    },
    tokenTtlSeconds: num(argv, 'token-ttl', DEFAULT_BLOCK_TOKEN_TTL_S, (v) => v > 0, 'a number of seconds > 0'),
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
      .option('access-key-id', { type: 'string', describe: 'Verify SigV4 signatures against this key id (with --secret-access-key)' })
      .option('secret-access-key', { type: 'string', describe: 'Secret key for signature verification' })
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
    const opts = serveOptionsFromArgv(argv);
    const logger = createLogger();
    // Handlers first: a signal that arrives while starting, or right after the ready line, still
    // closes the server cleanly.
    const signal = new Promise<NodeJS.Signals>((done) => {
      process.once('SIGTERM', () => done('SIGTERM'));
      process.once('SIGINT', () => done('SIGINT'));
    });
    const { startEbsServer } = await import('../../server/http-server.js');
    const { DataDirInUseError } = await import('../../server/store.js');
    const { UnsafePathError } = await import('../../os/private-path.js');
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
