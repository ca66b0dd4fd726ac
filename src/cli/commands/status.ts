/**
 * `ebsmount status [MOUNTPOINT] [--json]`: live browses and mounts with their counters, requests
 * and estimated cost. Work: src/browse/browse-status.ts, src/mount/run-status.ts.
 */
import type { Argv, CommandModule } from 'yargs';
import type { StatusArgv } from '../../mount/run-status.js';
import { runStatusWithBrowses } from '../../browse/browse-status.js';

export const statusCommand: CommandModule<object, StatusArgv> = {
  command: 'status [mountpoint]',
  describe: 'Show live mounts and browses: filesystems, reads, cache, prefetch, retries, requests and their estimated cost',
  builder: (y: Argv) =>
    y
      .positional('mountpoint', { type: 'string', describe: 'only this mount' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' }) as unknown as Argv<StatusArgv>,
  handler: (argv) => runStatusWithBrowses(argv),
};
