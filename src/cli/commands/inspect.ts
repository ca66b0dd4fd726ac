/**
 * `ebsmount inspect SNAPSHOT_ID [--json]`: the partition table and each partition's filesystem,
 * read from the snapshot without mounting it (no root needed). Work: src/browse/run-inspect.ts.
 */
import type { Argv, CommandModule } from 'yargs';
import { isValidSnapshotId } from '../../ebs/constants.js';
import { UserError } from '../../errors/user-error.js';
import { formatInspect, inspectJson, inspectSnapshot } from '../../browse/run-inspect.js';
import { createLogger } from '../../util/log.js';
import { apiFromArgv, endpointFromArgv, withAwsOptions, type AwsArgs } from '../aws-options.js';

export interface InspectArgv extends AwsArgs {
  snapshot: string;
  json: boolean;
}

export const inspectCommand: CommandModule<object, InspectArgv> = {
  command: 'inspect <snapshot>',
  describe: 'Show the partition table and filesystems of a snapshot (no mount, no root; fetches a few blocks)',
  builder: (y: Argv) =>
    withAwsOptions(y)
      .positional('snapshot', { type: 'string', describe: 'snapshot id (snap-...)', demandOption: true })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' }) as unknown as Argv<InspectArgv>,
  handler: async (argv) => {
    if (!isValidSnapshotId(argv.snapshot)) {
      throw new UserError(`'${argv.snapshot}' is not a snapshot id (expected snap- and 8 or 17 hex digits)`, 2);
    }
    const logger = createLogger({ level: 'warn' });
    const api = apiFromArgv(argv, logger);
    try {
      const r = await inspectSnapshot(api, argv.snapshot, { logger, endpoint: endpointFromArgv(argv) });
      process.stdout.write(argv.json ? JSON.stringify(inspectJson(r), null, 2) + '\n' : formatInspect(r));
    } finally {
      api.close?.();
    }
  },
};
