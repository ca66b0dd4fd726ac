/**
 * `ebsmount export SNAPSHOT FILE [--force] [--concurrency N]`: download a snapshot into a sparse
 * file or onto an existing block device (src/transfer/exporter.ts does the work).
 *
 * Output contract: nothing on stdout; progress bar (TTY only) and log on stderr. An existing
 * regular FILE is refused without --force. Errors: one line, non-zero exit; SIGINT/SIGTERM stop
 * the download (exit 130) and remove the partial file.
 */
import type { Argv, CommandModule } from 'yargs';
import { isValidSnapshotId } from '../../ebs/constants.js';
import { resolve } from 'node:path';
import { MAX_CONCURRENCY, MOUNT_DEFAULTS, parsePositiveInt, parseSize } from '../../mount/mount-options.js';
import { checkCacheOptions } from '../../mount/run-mount.js';
import { openDiskCacheOrExplain } from '../../store/open-disk-cache.js';
import { exportSnapshot } from '../../transfer/exporter.js';
import { withInterrupt } from '../../transfer/interrupt.js';
import { createLogger } from '../../util/log.js';
import { ProgressBar } from '../../util/progress.js';
import { apiFromArgv, endpointFromArgv, withAwsOptions, type AwsArgs } from '../aws-options.js';
import { UserError } from '../../errors/user-error.js';
import { LOG_LEVELS } from './import.js';

export interface ExportArgv extends AwsArgs {
  snapshot: string;
  file: string;
  force: boolean;
  concurrency: number;
  'log-level': string;
  'disk-cache'?: string;
  'disk-cache-size': string;
  base?: string;
}

export const exportCommand: CommandModule<object, ExportArgv> = {
  command: 'export <snapshot> <file>',
  describe: 'Download a snapshot into a sparse file (or onto a block device), every block verified',
  builder: (y: Argv) =>
    withAwsOptions(y)
      .positional('snapshot', { type: 'string', describe: 'snapshot id (snap-...)', demandOption: true })
      .positional('file', { type: 'string', describe: 'output file (created sparse) or block device', demandOption: true })
      .option('force', { type: 'boolean', default: false, describe: 'overwrite an existing file' })
      .option('concurrency', { type: 'number', default: 64, describe: 'blocks downloaded in parallel' })
      .option('disk-cache', { type: 'string', describe: 'use and fill this disk cache of verified blocks (shared with mounts); off by default' })
      .option('disk-cache-size', { type: 'string', default: MOUNT_DEFAULTS.diskCacheSize, describe: 'most bytes of blocks the disk cache keeps' })
      .option('base', { type: 'string', describe: 'a snapshot of the same lineage whose cached blocks serve the unchanged blocks (--disk-cache)' })
      .option('log-level', { type: 'string', default: 'warn', choices: LOG_LEVELS, describe: 'log level (stderr)' }) as unknown as Argv<ExportArgv>,
  handler: async (argv) => {
    if (!isValidSnapshotId(argv.snapshot)) {
      throw new UserError(`'${argv.snapshot}' is not a snapshot id (expected snap- and 8 or 17 hex digits)`, 2);
    }
    const concurrency = parsePositiveInt(argv.concurrency, 'concurrency', MAX_CONCURRENCY);
    const logger = createLogger({ level: argv['log-level'] });
    const diskCacheDir = argv['disk-cache'] ? resolve(argv['disk-cache']) : undefined;
    const diskCacheSizeBytes = parseSize(argv['disk-cache-size'], 'disk-cache-size');
    checkCacheOptions({ base: argv.base, diskCacheDir, diskCacheSizeBytes });
    const diskCache = diskCacheDir ? openDiskCacheOrExplain(diskCacheDir, diskCacheSizeBytes, logger) : undefined;
    const api = apiFromArgv({ ...argv, concurrency }, logger);
    let bar: ProgressBar | undefined;
    try {
      const result = await withInterrupt((signal) => exportSnapshot({
        api,
        snapshotId: argv.snapshot,
        filePath: argv.file,
        force: argv.force,
        concurrency,
        endpoint: endpointFromArgv(argv),
        logger,
        signal,
        diskCache,
        base: argv.base,
        onProgress: (p) => {
          bar ??= new ProgressBar({ label: `export ${argv.snapshot}`, totalBytes: p.totalBytes });
          bar.update(p.bytesDone, { blocks: p.blocksDone });
        },
      }));
      bar?.finish({ blocks: result.blocksListed });
      logger.info(result, 'export: finished');
    } catch (err) {
      bar?.clear();
      throw err;
    } finally {
      diskCache?.close();
      api.close?.();
    }
  },
};
