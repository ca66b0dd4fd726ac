/**
 * withInterrupt: runs a transfer with an AbortSignal that SIGINT / SIGTERM abort, so import and
 * export stop cleanly (workers drain, partial files removed) and exit 130 with one line.
 */
import { setMaxListeners } from 'node:events';
import { UserError } from '../errors/user-error.js';

export async function withInterrupt<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctrl = new AbortController();
  setMaxListeners(0, ctrl.signal);
  const onSignal = (sig: NodeJS.Signals) => ctrl.abort(new UserError(`interrupted (${sig})`, 130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn(ctrl.signal);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
