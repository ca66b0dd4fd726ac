/**
 * Logging: pino JSON to a file or stderr; pretty when stderr is a TTY and no file is given.
 * Contract: block tokens, page tokens, credentials and Authorization headers are redacted
 * wherever they appear under these keys, so no layer has to remember to strip them.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type { Logger };

export const REDACT_PATHS = [
  'token', 'blockToken', 'nextToken', 'pageToken', 'firstToken', 'secondToken',
  '*.token', '*.blockToken', '*.nextToken', '*.pageToken', '*.firstToken', '*.secondToken',
  'secretAccessKey', 'sessionToken', 'accessKeyId', 'authorization', 'Authorization',
  '*.secretAccessKey', '*.sessionToken', '*.accessKeyId', '*.authorization', '*.Authorization',
  'headers.authorization', 'headers["x-amz-security-token"]', 'credentials',
];

export interface LogOptions {
  level?: string;
  /** Path of a JSON log file; omitted: stderr. */
  file?: string;
  /** Force pretty or JSON on stderr; default: pretty iff stderr is a TTY. */
  pretty?: boolean;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const base = {
    level: opts.level ?? process.env.EBSMOUNT_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  if (opts.file) {
    mkdirSync(dirname(opts.file), { recursive: true });
    return pino(base, pino.destination({ dest: opts.file, sync: false, mkdir: true }));
  }
  const usePretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  if (usePretty) {
    return pino(base, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname' }));
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything: the default for library code and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
