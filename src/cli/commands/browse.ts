/**
 * `ebsmount browse SNAPSHOT_ID DIR [--partition N] [--replay]` (root): every filesystem of the
 * snapshot mounted read-only with forensic-safe options under DIR (DIR/pN per partition, DIR
 * itself for a bare disk or one --partition). `ebsmount unmount DIR` undoes it. Work:
 * src/browse/run-browse.ts.
 */
import type { Argv, CommandModule } from 'yargs';
import { runBrowse, type BrowseArgv } from '../../browse/run-browse.js';
import { MOUNT_DEFAULTS } from '../../mount/mount-options.js';
import { withAwsOptions } from '../aws-options.js';

export const browseCommand: CommandModule<object, BrowseArgv> = {
  command: 'browse <snapshot> <dir>',
  describe: 'Mount every filesystem of a snapshot read-only under DIR (DIR/pN per partition), forensic-safe (root)',
  builder: (y: Argv) =>
    withAwsOptions(y)
      .positional('snapshot', { type: 'string', describe: 'snapshot id (snap-...)', demandOption: true })
      .positional('dir', { type: 'string', describe: 'an empty directory', demandOption: true })
      .option('partition', { type: 'number', describe: 'browse only partition N, mounted at DIR itself' })
      .option('replay', {
        type: 'boolean',
        default: false,
        describe: 'let the kernel replay journals/logs (crash-consistent snapshots) into a scratch overlay: writable mount with discard, nothing is committed',
      })
      .option('cache-size', { type: 'string', default: MOUNT_DEFAULTS.cacheSize, describe: 'block cache size of the snapshot mount (512M, 1G...)' })
      .option('log-level', { type: 'string', default: MOUNT_DEFAULTS.logLevel, choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], describe: "the snapshot mount's log level" })
      .example('sudo ebsmount browse snap-0123456789abcdef0 /mnt/evidence', 'each partition under /mnt/evidence/pN')
      .example('sudo ebsmount unmount /mnt/evidence', 'undo it') as unknown as Argv<BrowseArgv>,
  handler: (argv) => runBrowse(argv),
};
