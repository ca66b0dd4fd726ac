/**
 * Logging: pino JSON to a file or stderr; pretty when stderr is a TTY and no file is given.
 *
 * Contract:
 * - Secrets never reach a log, whoever logs what (src/util/redact.ts): every logged object is
 *   redacted at any depth (secret-named fields; Error causes, AggregateError lists and properties
 *   such as an SDK error's $response are kept and redacted too), and the final JSON line —
 *   child bindings and the message included — is redacted once more, secret values in free text
 *   too (tokens in URLs, SigV4 signatures and credentials, Authorization headers, access key ids).
 * - A log file and the directories created for it are private to the user (0600 / 0700): a log
 *   names snapshots, paths and block indexes of a disk. An existing log file is appended to and
 *   narrowed to 0600 when it was wider (a device or FIFO such as /dev/stderr is used as is); a
 *   directory, or a path that cannot be created, is a LogFileError (the CLI turns it into one line).
 */
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';
import { chmodSync, constants, fchmodSync, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { redactText, redactValue } from './redact.js';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Path of a JSON log file; omitted: stderr. */
  file?: string;
  /** Force pretty or JSON on stderr; default: pretty iff stderr is a TTY. */
  pretty?: boolean;
  /** Testing: write JSON lines to this stream instead (file and pretty are ignored). */
  destination?: DestinationStream;
}

export class LogFileError extends Error {}

/** The pino options that make every line safe to keep (also used by tests' own pino loggers). */
export function redactingOptions(): Pick<LoggerOptions, 'formatters' | 'hooks' | 'serializers'> {
  return {
    // Errors become plain objects here, while their causes and properties are still reachable
    // (pino's own err serializer would flatten them); so `err` needs no serializer after this.
    formatters: { log: (obj) => redactValue(obj) as Record<string, unknown> },
    serializers: { err: (v: unknown) => v },
    // The final line: child bindings and the message were not seen by the formatter above.
    hooks: { streamWrite: redactLine },
  };
}

function redactLine(line: string): string {
  try {
    return `${JSON.stringify(redactValue(JSON.parse(line)))}\n`;
  } catch {
    return redactText(line);
  }
}

/**
 * Opens (creating 0600, in directories created 0700) the log file for appending and returns its
 * descriptor. Refuses a directory with a LogFileError. `privateDir`: the directory is ebsmount's own
 * (the default log directory), narrowed to 0700 if an older version left it wider.
 */
export function openLogFile(file: string, opts: { privateDir?: boolean } = {}): number {
  const dir = dirname(file);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST' || e.code === 'ENOTDIR') throw new LogFileError(`cannot create the log directory ${dir}: ${e.path ?? dir} is not a directory`);
    throw new LogFileError(`cannot create the log directory ${dir}: ${e.message}`);
  }
  if (opts.privateDir) {
    const st = statSync(dir);
    if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) chmodSync(dir, 0o700);
  }
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new LogFileError(`log file ${file} is a directory (give a file path, e.g. ${file.replace(/\/+$/, '')}/ebsmount.log)`);
    throw new LogFileError(`cannot open the log file ${file}: ${(err as Error).message}`);
  }
  const st = fstatSync(fd);
  if (st.isFile() && (st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) fchmodSync(fd, 0o600);
  return fd;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const base: LoggerOptions = {
    level: opts.level ?? process.env.EBSMOUNT_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    ...redactingOptions(),
  };
  if (opts.destination) return pino(base, opts.destination);
  if (opts.file) {
    return pino(base, pino.destination({ fd: openLogFile(opts.file), sync: false }));
  }
  const usePretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  if (usePretty) {
    return pino(base, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname' }));
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything: the default for library code and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
