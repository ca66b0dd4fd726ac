/**
 * Where journals live: one directory per writable mount, under the user's state directory.
 *
 * Contract: `defaultJournalRoot()` is `${XDG_STATE_HOME:-$HOME/.local/state}/ebsmount/journals`
 * (a relative or empty XDG_STATE_HOME is ignored, as the XDG spec says); `newJournalDir(root)`
 * names a fresh directory `<root>/<journal-id>` without creating it. The file names inside a
 * journal directory are fixed here so every module agrees on them.
 */
import { randomUUID } from 'node:crypto';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

export const META_FILE = 'meta.json';
export const BLOCKS_FILE = 'blocks.dat';
export const INDEX_FILE = 'index.log';
export const LOCK_FILE = 'journal.lock';

export function defaultJournalRoot(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  const stateHome = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.local', 'state');
  return join(stateHome, 'ebsmount', 'journals');
}

export function newJournalId(): string {
  return randomUUID();
}

export function newJournalDir(root: string = defaultJournalRoot(), journalId: string = newJournalId()): { dir: string; journalId: string } {
  return { dir: join(root, journalId), journalId };
}
