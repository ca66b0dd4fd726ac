/**
 * `ebsmount commit --journal DIR`: finishes committing a journal as a child snapshot of its
 * parent — after kill -9 of a writable mount, a crash, or a failed commit at unmount.
 *
 * Contract:
 * - Needs no mount: every partial-block merge was done when the write happened, so the journal
 *   alone holds the child's blocks. Endpoint and region default to the ones the mount used
 *   (journal meta.json); --endpoint/--region/--profile override them.
 * - Prints the child snapshot id on stdout (only that). A journal already committed prints the
 *   same id again and makes no request; a journal with no changes says so on stderr and prints
 *   nothing. The ClientToken makes an interrupted commit resume the same child snapshot.
 * - `--restart` starts a new child when the earlier one went to state error.
 * - A child the service leaves pending after CompleteSnapshot is waited for (bounded); if still
 *   pending its id is printed, with a note that the journal is kept until a later run of this
 *   command sees it completed.
 * - A damaged journal is refused (one line naming the damage). `--salvage` commits every intact
 *   block and lists the lost ones on stderr: the child keeps the PARENT's data for those blocks
 *   (never zeros); a journal whose commit had already started gets a fresh child then (the
 *   earlier one may hold puts of blocks now left out).
 * - A journal still held by a running mount is refused (unmount it; that commits).
 * - Failures are one line naming the cause and how to resume; the journal is kept.
 */
import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { BLOCK_SIZE } from '../../ebs/constants.js';
import { createLogger } from '../../util/log.js';
import { ProgressBar } from '../../util/progress.js';
import { commitJournal, DEFAULT_UPLOAD_CONCURRENCY } from '../../writeback/committer.js';
import { Journal, JournalError } from '../../writeback/journal.js';
import { apiFromArgv, withAwsOptions, type AwsArgs } from '../aws-options.js';
import { UserError } from '../../errors/user-error.js';

interface CommitArgv extends AwsArgs {
  journal?: string;
  'upload-concurrency'?: number;
  restart?: boolean;
  salvage?: boolean;
  verbose?: boolean;
}

export const commitCommand: CommandModule<object, CommitArgv> = {
  command: 'commit',
  describe: 'Finish committing a journal (of a crashed or failed writable mount) as a child snapshot',
  builder: (y: Argv) =>
    withAwsOptions(y)
      .option('journal', { type: 'string', describe: 'the journal directory (see `ebsmount journals`)' })
      .option('upload-concurrency', {
        type: 'number',
        default: DEFAULT_UPLOAD_CONCURRENCY,
        describe: 'PutSnapshotBlock requests in flight',
      })
      .option('restart', {
        type: 'boolean',
        default: false,
        describe: 'start a new child snapshot when the earlier one went to state error',
      })
      .option('salvage', {
        type: 'boolean',
        default: false,
        describe: "commit a damaged journal's intact blocks; the lost ones are listed and keep the parent's data",
      })
      .option('verbose', { type: 'boolean', default: false, describe: 'log progress and retries to stderr' })
      .example('$0 commit --journal ~/.local/state/ebsmount/journals/<id>', 'finish the commit of a crashed mount (see `ebsmount journals`)') as unknown as Argv<CommitArgv>,
  handler: async (argv) => {
    if (!argv.journal) throw new UserError('commit: --journal DIR is required (list journals with `ebsmount journals`)', 2);
    const concurrency = argv['upload-concurrency'] ?? DEFAULT_UPLOAD_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
      throw new UserError(`commit: --upload-concurrency must be an integer from 1 to 1024 (got ${String(concurrency)})`, 2);
    }
    const dir = resolve(argv.journal);
    if (!(await Journal.exists(dir))) throw new UserError(`commit: ${dir} is not an ebsmount journal (no meta.json)`, 2);
    let meta;
    try {
      meta = await Journal.readMeta(dir);
    } catch (err) {
      throw new UserError(`commit: ${(err as Error).message}`, 1, { cause: err });
    }
    if (meta.state === 'committed') {
      if (meta.childSnapshotId) process.stdout.write(`${meta.childSnapshotId}\n`);
      else process.stderr.write(`ebsmount: journal ${dir} had no changes: no snapshot was created\n`);
      return;
    }

    const logger = createLogger({ level: argv.verbose ? 'debug' : (process.env.EBSMOUNT_LOG_LEVEL ?? 'warn') });
    const endpoint = argv.endpoint ?? meta.endpoint;
    const api = apiFromArgv({ endpoint, region: argv.region ?? meta.region, profile: argv.profile, concurrency }, logger);
    let journal: Journal;
    try {
      journal = await Journal.open(dir, { logger, salvage: argv.salvage });
    } catch (err) {
      api.close?.();
      if (err instanceof UserError) throw err;
      if (err instanceof JournalError) throw new UserError(`commit: ${err.message}`, 1, { cause: err });
      throw err;
    }
    const lost = journal.salvage?.lostBlocks ?? [];
    if (journal.salvage && (lost.length > 0 || journal.salvage.unreadableRecords > 0)) {
      const shown = lost.slice(0, 50).join(', ');
      process.stderr.write(
        `ebsmount: salvage of ${dir}: ${lost.length} block${lost.length === 1 ? '' : 's'} lost, the child keeps the parent's data there`
        + `${lost.length > 0 ? `: ${shown}${lost.length > 50 ? `, ... (${lost.length - 50} more; meta.json lists all)` : ''}` : ''}`
        + `${journal.salvage.unreadableRecords > 0 ? `; ${journal.salvage.unreadableRecords} unreadable index record(s)` : ''}\n`,
      );
    }
    // Blocks left out: a child an earlier attempt started may hold some of them, so start a new one.
    const restart = argv.restart || (lost.length > 0 && journal.meta.state === 'committing');
    const bar = new ProgressBar({ label: 'commit', totalBytes: journal.dirtyBlockCount * BLOCK_SIZE });
    try {
      const result = await commitJournal(journal, {
        api,
        uploadConcurrency: concurrency,
        logger,
        endpoint,
        restart,
        onProgress: (done, total) => {
          bar.totalBytes = total * BLOCK_SIZE;
          bar.update(done * BLOCK_SIZE, { blocks: done });
        },
      });
      bar.finish();
      if (result.snapshotId) {
        process.stdout.write(`${result.snapshotId}\n`);
        if (result.pending) {
          process.stderr.write(
            `ebsmount: child snapshot ${result.snapshotId} is still pending; the journal is kept until it is completed: `
            + `confirm later with: ebsmount commit --journal ${dir}\n`,
          );
        }
        if (result.blocksSkipped > 0) process.stderr.write(`ebsmount: ${result.blocksSkipped} blocks equal to the parent's were not uploaded\n`);
      } else {
        process.stderr.write(`ebsmount: journal ${dir} had no changes: no snapshot was created\n`);
      }
    } catch (err) {
      bar.clear();
      throw err;
    } finally {
      await journal.close().catch(() => {});
      api.close?.();
    }
  },
};
