/**
 * `ebsmount journals [--root DIR] [--all] [--json]`: the journals of writable mounts on this
 * machine — by default only those not committed yet (a running mount, a crashed one, or a
 * failed commit), which `ebsmount commit --journal DIR` finishes.
 *
 * Contract: read-only (never locks or changes a journal). Table columns: id (first 8 chars),
 * state (open / committing / completing (child pending) / committed / damaged, "in use" when a live mount holds it), parent,
 * child, dirty blocks, size on disk, created, directory. `--json` prints the full JournalInfo
 * array (journal-registry.ts). Nothing found: a note on stderr, exit 0.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UserError } from '../../errors/user-error.js';
import type { Argv, CommandModule } from 'yargs';
import { formatBytes } from '../../util/progress.js';
import { listJournals, type JournalInfo } from '../../writeback/journal-registry.js';
import { defaultJournalRoot } from '../../writeback/paths.js';

interface JournalsArgv {
  root?: string;
  all?: boolean;
  json?: boolean;
}

export const journalsCommand: CommandModule<object, JournalsArgv> = {
  command: 'journals',
  describe: 'List the journals of writable mounts that are not committed yet',
  builder: (y: Argv) =>
    y
      .option('root', { type: 'string', describe: `where journals live (default ${defaultJournalRoot()})` })
      .option('all', { type: 'boolean', default: false, describe: 'include committed journals' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' }) as unknown as Argv<JournalsArgv>,
  handler: async (argv) => {
    const root = resolve(argv.root ?? defaultJournalRoot());
    const st = await stat(root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw new UserError(`journals: cannot read ${root}: ${err.message}`);
    });
    if (st && !st.isDirectory()) throw new UserError(`journals: ${root} is not a directory (--root takes the directory that holds the journals)`, 2);
    let journals: JournalInfo[];
    try {
      journals = await listJournals(root, { all: argv.all });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM' || code === 'ENOTDIR') throw new UserError(`journals: cannot read ${root}: ${(err as Error).message}`);
      throw err;
    }
    if (argv.json) {
      process.stdout.write(`${JSON.stringify(journals, null, 2)}\n`);
      return;
    }
    if (journals.length === 0) {
      process.stderr.write(`ebsmount: no ${argv.all ? '' : 'unfinished '}journals in ${root}\n`);
      return;
    }
    process.stdout.write(formatTable(journals));
    for (const j of journals) if (j.state === 'damaged' && j.error) process.stdout.write(`\ndamaged: ${j.error}\n`);
    if (journals.some((j) => j.state === 'open' || j.state === 'committing' || j.state === 'completing')) {
      process.stdout.write('\nFinish one with: ebsmount commit --journal DIR\n');
    }
  },
};

export function formatTable(journals: JournalInfo[]): string {
  const rows = [['ID', 'STATE', 'PARENT', 'CHILD', 'DIRTY', 'SIZE', 'CREATED', 'DIR']];
  for (const j of journals) {
    rows.push([
      j.journalId.slice(0, 8),
      j.inUseBy !== undefined ? `${j.state} (in use by ${j.inUseBy})` : j.state,
      j.parentSnapshotId,
      j.childSnapshotId ?? '-',
      String(j.dirtyBlocks),
      formatBytes(j.bytes),
      j.createdAt ? j.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '?',
      j.dir,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n';
}
