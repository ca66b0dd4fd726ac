#!/usr/bin/env node
/**
 * ebsmount command line: registers one module per command (src/cli/commands/*) and turns
 * UserError into a one-line message and a non-zero exit. Commands do the work; this file only
 * routes.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserError } from '../errors/user-error.js';
import { commands } from './commands/index.js';

export async function main(argv: string[]): Promise<void> {
  const parser = yargs(argv)
    .scriptName('ebsmount')
    .usage('$0 [mount] SNAPSHOT_ID MOUNTPOINT [options]\n\nMount an EBS snapshot as a lazily fetched image file, or move images in and out of snapshots.')
    .strict()
    .demandCommand(1, 'Give a command, or a snapshot id and a mountpoint (see --help).')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UserError(`${msg}\nRun 'ebsmount --help' for usage.`, 2);
    });
  for (const c of commands) parser.command(c as never);
  await parser.parseAsync();
}

main(hideBin(process.argv)).catch((err: unknown) => {
  if (err instanceof UserError) {
    process.stderr.write(`ebsmount: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`ebsmount: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 70;
  }
});
