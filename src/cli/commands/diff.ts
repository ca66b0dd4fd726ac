/**
 * `ebsmount diff SNAP_A SNAP_B [--json]`: what changed between two snapshots of one lineage.
 * Block level (ListChangedBlocks, no mount, no root): src/diff/run-block-diff.ts.
 *
 * Exit status as diff(1): 0 no differences, 1 differences, 2 trouble (every error, usage
 * included, is one line `ebsmount: ...`).
 */
import type { Argv, CommandModule } from 'yargs';
import { isValidSnapshotId } from '../../ebs/constants.js';
import { formatBlockDiff, jsonChunks } from '../../diff/block-report.js';
import { runBlockDiff } from '../../diff/run-block-diff.js';
import { snapshotTableReader } from '../../diff/snapshot-table.js';
import { UserError } from '../../errors/user-error.js';
import { withInterrupt } from '../../transfer/interrupt.js';
import { createLogger } from '../../util/log.js';
import { ProgressBar } from '../../util/progress.js';
import { apiFromArgv, endpointFromArgv, withAwsOptions, type AwsArgs } from '../aws-options.js';
import { LOG_LEVELS } from './import.js';

export interface DiffArgv extends AwsArgs {
  a: string;
  b: string;
  json: boolean;
  'log-level': string;
}

/** Trouble is exit status 2 (diff(1)); an interruption keeps its 130. */
function asTrouble(err: unknown): unknown {
  if (err instanceof UserError && err.exitCode !== 130 && err.exitCode !== 2) return new UserError(err.message, 2, { cause: err });
  return err;
}

async function writeAll(chunks: Iterable<string>): Promise<void> {
  for (const c of chunks) {
    if (!process.stdout.write(c)) await new Promise<void>((r) => process.stdout.once('drain', () => r()));
  }
}

export const diffCommand: CommandModule<object, DiffArgv> = {
  command: 'diff <a> <b>',
  describe: 'What changed between two snapshots of one lineage: changed blocks, ranges, per partition',
  builder: (y: Argv) =>
    withAwsOptions(y)
      .usage('$0 diff SNAP_A SNAP_B [--json]\n\nLists the blocks that differ between SNAP_A (older) and SNAP_B (newer) with ListChangedBlocks: ' +
        'no mount, no root. Exit status: 0 no differences, 1 differences, 2 trouble.')
      .positional('a', { type: 'string', describe: 'first (older) snapshot id', demandOption: true })
      .positional('b', { type: 'string', describe: 'second (newer) snapshot id', demandOption: true })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON: figures, ranges, partitions and every changed block with the side holding data' })
      .option('log-level', { type: 'string', default: 'warn', choices: LOG_LEVELS, describe: 'log level (stderr)' }) as unknown as Argv<DiffArgv>,
  handler: async (argv) => {
    try {
      for (const id of [argv.a, argv.b]) {
        if (!isValidSnapshotId(id)) throw new UserError(`'${id}' is not a snapshot id (expected snap- and 8 or 17 hex digits)`, 2);
      }
      const logger = createLogger({ level: argv['log-level'] });
      const api = apiFromArgv(argv, logger);
      let bar: ProgressBar | undefined;
      try {
        const report = await withInterrupt((signal) =>
          runBlockDiff({
            api,
            snapA: argv.a,
            snapB: argv.b,
            endpoint: endpointFromArgv(argv),
            readTable: snapshotTableReader(api, logger),
            signal,
            onProgress: (done, total, soFar) => {
              bar ??= new ProgressBar({ label: 'listing changed blocks', totalBytes: total });
              bar.update(done, { note: `${soFar} changed` });
            },
          }),
        );
        bar?.clear();
        if (argv.json) await writeAll(jsonChunks(report));
        else await writeAll([formatBlockDiff(report)]);
        process.exitCode = report.changed.size > 0 ? 1 : 0;
      } catch (err) {
        bar?.clear();
        throw err;
      } finally {
        api.close?.();
      }
    } catch (err) {
      throw asTrouble(err);
    }
  },
};
