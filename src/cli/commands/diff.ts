/**
 * `ebsmount diff SNAP_A SNAP_B [--json]`: what changed between two snapshots of one lineage.
 * Block level (ListChangedBlocks, no mount, no root): src/diff/run-block-diff.ts.
 * `--files` (root): which files changed, one line each on stdout as found, notes and the summary
 * (what was fetched and its cost) on stderr: src/diff/run-file-diff.ts.
 *
 * Exit status as diff(1): 0 no differences, 1 differences, 2 trouble (every error, usage
 * included, is one line `ebsmount: ...`).
 */
import type { Argv, CommandModule } from 'yargs';
import { isValidSnapshotId } from '../../ebs/constants.js';
import { formatBlockDiff, jsonChunks } from '../../diff/block-report.js';
import { runBlockDiff } from '../../diff/run-block-diff.js';
import { snapshotTableReader } from '../../diff/snapshot-table.js';
import { changeJson, formatChange, formatFilesSummary, partitionLabel } from '../../diff/file-report.js';
import { runFileDiff } from '../../diff/run-file-diff.js';
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
  files: boolean;
  content: boolean;
  path?: string;
  partition?: number;
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
      .option('json', { type: 'boolean', default: false, describe: 'print JSON: figures, ranges, partitions and every changed block with the side holding data (with --files: every change)' })
      .option('files', { type: 'boolean', default: false, describe: 'which files changed (root: mounts both snapshots read-only): A added, D deleted, M content, T type, m metadata only' })
      .option('content', { type: 'boolean', default: false, describe: 'with --files: sha256 of both sides of every M file (in --json)' })
      .option('path', { type: 'string', describe: 'with --files: only this path and what is below it' })
      .option('partition', { type: 'number', describe: 'with --files: only partition N' })
      .option('log-level', { type: 'string', default: 'warn', choices: LOG_LEVELS, describe: 'log level (stderr)' }) as unknown as Argv<DiffArgv>,
  handler: async (argv) => {
    try {
      for (const id of [argv.a, argv.b]) {
        if (!isValidSnapshotId(id)) throw new UserError(`'${id}' is not a snapshot id (expected snap- and 8 or 17 hex digits)`, 2);
      }
      if (!argv.files && (argv.content || argv.path !== undefined || argv.partition !== undefined)) {
        throw new UserError('--content, --path and --partition apply to --files', 2);
      }
      if (argv.partition !== undefined && !(Number.isInteger(argv.partition) && argv.partition >= 1)) {
        throw new UserError(`--partition must be a partition number (1 or more), not ${argv.partition}`, 2);
      }
      if (argv.files) return await filesDiff(argv);
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
        // Only a clean finish sets it: trouble leaves through the catch below (exit 2).
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

function awsArgs(argv: AwsArgs): string[] {
  return [
    ...(argv.endpoint ? ['--endpoint', argv.endpoint] : []),
    ...(argv.region ? ['--region', argv.region] : []),
    ...(argv.profile ? ['--profile', argv.profile] : []),
  ];
}

/** One self-rewriting line on stderr when it is a terminal; cleared before anything else is printed. */
function statusLine() {
  const tty = Boolean(process.stderr.isTTY);
  let shown = false;
  return {
    show(text: string) {
      if (!tty) return;
      process.stderr.write(`\r${text.slice(0, (process.stderr.columns || 100) - 1)}\x1b[K`);
      shown = true;
    },
    clear() {
      if (tty && shown) process.stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}

async function filesDiff(argv: DiffArgv): Promise<void> {
  if (process.getuid?.() !== 0) throw new UserError('diff --files mounts both snapshots\' filesystems (loop devices): run it as root', 2);
  const logger = createLogger({ level: argv['log-level'] });
  const api = apiFromArgv(argv, logger);
  const json: Record<string, unknown>[] = [];
  const line = statusLine();
  try {
    const summary = await withInterrupt((signal) =>
      runFileDiff({
        api,
        snapA: argv.a,
        snapB: argv.b,
        endpoint: endpointFromArgv(argv),
        awsArgs: awsArgs(argv),
        prefix: argv.path,
        partition: argv.partition,
        content: argv.content,
        signal,
        onChange: async (c, partition) => {
          line.clear();
          if (argv.json) json.push(changeJson(c, partitionLabel(partition)));
          else await writeAll([`${formatChange(c, partitionLabel(partition))}\n`]);
        },
        onNote: argv.json ? undefined : (n) => {
          line.clear();
          process.stderr.write(`note: ${n}\n`);
        },
        onProgress: (partition, entries, changes) => line.show(`walking ${partition}: ${entries} entries, ${changes} differences`),
      }),
    );
    if (argv.json) {
      await writeAll([JSON.stringify({ snapshotA: argv.a, snapshotB: argv.b, ...summary, differences: summary.changes, changes: json }, null, 2) + '\n']);
    } else {
      process.stderr.write(formatFilesSummary(argv.a, argv.b, summary));
    }
    process.exitCode = summary.changes > 0 ? 1 : 0;
  } finally {
    line.clear();
    api.close?.();
  }
}
