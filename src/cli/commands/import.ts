/**
 * `ebsmount import IMAGE [--parent SNAP] [--description D] [--tag k=v]...`: upload a raw image
 * as a completed snapshot (src/transfer/importer.ts does the work).
 *
 * Output contract: stdout carries ONLY the new snapshot id (one line), so scripts can capture
 * it; the progress bar (TTY only) and the log (pino, warn by default; JSON when stderr is not a
 * TTY) go to stderr. Errors: one line, non-zero exit; SIGINT/SIGTERM stop the upload (exit 130).
 */
import type { Argv, CommandModule } from 'yargs';
import { isValidSnapshotId, MIN_SNAPSHOT_TIMEOUT_MIN, MAX_SNAPSHOT_TIMEOUT_MIN } from '../../ebs/constants.js';
import { MAX_CONCURRENCY, parsePositiveInt, parseTags } from '../../mount/mount-options.js';
import { importImage, DEFAULT_CONCURRENCY } from '../../transfer/importer.js';
import { createLogger } from '../../util/log.js';
import { ProgressBar } from '../../util/progress.js';
import { apiFromArgv, endpointFromArgv, withAwsOptions, type AwsArgs } from '../aws-options.js';
import { UserError } from '../../errors/user-error.js';
import { withInterrupt } from '../../transfer/interrupt.js';

export interface ImportArgv extends AwsArgs {
  image: string;
  parent?: string;
  description?: string;
  tag?: string[];
  concurrency: number;
  'timeout-minutes'?: number;
  'log-level': string;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const importCommand: CommandModule<object, ImportArgv> = {
  command: 'import <image>',
  describe: 'Upload a raw disk image (file or block device) as a new snapshot; prints its id',
  builder: (y: Argv) =>
    withAwsOptions(y)
      .positional('image', { type: 'string', describe: 'raw image file or block device', demandOption: true })
      .option('parent', { type: 'string', describe: 'parent snapshot: upload only the blocks that differ from it' })
      .option('description', { type: 'string', describe: 'snapshot description' })
      .option('tag', { type: 'string', array: true, nargs: 1, describe: 'tag key=value (repeatable)' })
      .option('concurrency', { type: 'number', default: DEFAULT_CONCURRENCY, describe: 'blocks uploaded in parallel' })
      .option('timeout-minutes', { type: 'number', describe: `snapshot Timeout (${MIN_SNAPSHOT_TIMEOUT_MIN}–${MAX_SNAPSHOT_TIMEOUT_MIN} minutes; service default 60)` })
      .option('log-level', { type: 'string', default: 'warn', choices: LOG_LEVELS, describe: 'log level (stderr)' }) as unknown as Argv<ImportArgv>,
  handler: async (argv) => {
    if (argv.parent !== undefined && !isValidSnapshotId(argv.parent)) {
      throw new UserError(`'${argv.parent}' is not a snapshot id (expected snap- and 8 or 17 hex digits)`, 2);
    }
    const concurrency = parsePositiveInt(argv.concurrency, 'concurrency', MAX_CONCURRENCY);
    const tags = parseTags(argv.tag);
    const timeout = argv['timeout-minutes'];
    if (timeout !== undefined && !(Number.isInteger(timeout) && timeout >= MIN_SNAPSHOT_TIMEOUT_MIN && timeout <= MAX_SNAPSHOT_TIMEOUT_MIN)) {
      throw new UserError(`--timeout-minutes must be an integer from ${MIN_SNAPSHOT_TIMEOUT_MIN} to ${MAX_SNAPSHOT_TIMEOUT_MIN}`, 2);
    }
    const logger = createLogger({ level: argv['log-level'] });
    const api = apiFromArgv({ ...argv, concurrency }, logger);
    let bar: ProgressBar | undefined;
    try {
      const result = await withInterrupt((signal) => importImage({
        api,
        imagePath: argv.image,
        parentSnapshotId: argv.parent,
        description: argv.description,
        tags: tags.length > 0 ? tags : undefined,
        concurrency,
        timeoutMinutes: timeout,
        endpoint: endpointFromArgv(argv),
        logger,
        signal,
        onProgress: (p) => {
          bar ??= new ProgressBar({ label: 'import', totalBytes: p.totalBytes });
          bar.update(p.bytesDone, { blocks: p.blocksDone, note: `${p.blocksTransferred} written` });
        },
      }));
      bar?.finish();
      if (result.alreadyCompleted) {
        process.stderr.write(`ebsmount: this image was already imported as ${result.snapshotId} (same image, parent and description); not uploading again\n`);
      }
      process.stdout.write(`${result.snapshotId}\n`);
    } catch (err) {
      bar?.clear();
      throw err;
    } finally {
      api.close?.();
    }
  },
};
