/**
 * Where a mount keeps its files.
 *
 * - State dir: `${XDG_STATE_HOME:-$HOME/.local/state}/ebsmount` (logs under `logs/`).
 * - Registry dir (one JSON file and one control socket per live mount): `/run/ebsmount` for root,
 *   else `$XDG_RUNTIME_DIR/ebsmount`, else `<state dir>/run`. `EBSMOUNT_RUN_DIR` overrides it
 *   (tests, or several independent instances).
 * - Default log file: `<state dir>/logs/<snap>-<UTC time>.log`.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'ebsmount');
}

export function registryDir(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? 0): string {
  if (env.EBSMOUNT_RUN_DIR) return env.EBSMOUNT_RUN_DIR;
  if (uid === 0) return '/run/ebsmount';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'ebsmount');
  return join(stateDir(env), 'run');
}

export function defaultLogFile(snapshotId: string, now = new Date(), env: NodeJS.ProcessEnv = process.env): string {
  const stamp = now.toISOString().replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z');
  return join(stateDir(env), 'logs', `${snapshotId}-${stamp}.log`);
}
