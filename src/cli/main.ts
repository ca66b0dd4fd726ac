#!/usr/bin/env node
/**
 * ebsmount command line: registers one module per command (src/cli/commands/*) and turns
 * UserError into a one-line message and a non-zero exit (usage errors: 2). Commands do the work;
 * this file only routes (plus the argument checks of argv-checks.ts, common to every command).
 * Anything else thrown is a bug: exit 70 with its stack.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserError } from '../errors/user-error.js';
import { commands } from './commands/index.js';
import { checkParsedArgs, usageMessage } from './argv-checks.js';

const commandNames = commands.flatMap((c) => {
  const names = [c.command, ...(Array.isArray(c.aliases) ? c.aliases : c.aliases ? [c.aliases] : [])].flat();
  return names.map((n) => String(n).split(' ')[0]!).filter((n) => n && n !== '$0');
});

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
    .middleware((args) => {
      const arrays = new Set<string>((parser as unknown as { getOptions(): { array?: string[] } }).getOptions().array ?? []);
      checkParsedArgs(args as Record<string, unknown>, argv, arrays);
    }, true)
    .fail((msg, err) => {
      // yargs' own errors (YError: e.g. a throwing `coerce`) are usage errors, not bugs.
      if (err?.name === 'YError') throw new UserError(usageMessage(err.message, argv, commandNames), 2);
      if (err) throw err;
      throw new UserError(usageMessage(msg, argv, commandNames), 2);
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
