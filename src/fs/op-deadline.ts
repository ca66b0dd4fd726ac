/**
 * Op deadlines: every data op of the FUSE adapter (read, write, flush, fsync) is answered by
 * ebsmount itself before fuse-native's own op timeout (FUSE_OP_TIMEOUT_MS, 80 s) can fire. When
 * that timer fires, fuse-native answers the kernel and libfuse frees the op's buffer: anything
 * that touched the buffer afterwards would corrupt memory or another request's data.
 *
 * Contract of runWithDeadline(deadlineMs, work, answer):
 * - `work(signal)` runs at once; `answer` is called exactly once: with work's result or error
 *   when it settles first, or with a DeadlineError when `deadlineMs` passes first. In that case
 *   `signal` aborts synchronously just before `answer` runs, so work that checks
 *   `signal.aborted` right before touching the op's buffer never touches it after the answer
 *   (VolumeFile does; the signal reaches every layer below, which stop waiting: limiter queue,
 *   block-map listing, retries, per-block locks).
 * - Work that goes on after the deadline is left to finish (a fetch fills the cache); its
 *   outcome is dropped (a rejection is never unhandled).
 * - deadlineMs comes from `EBSMOUNT_OP_DEADLINE_MS` (a testing knob; opDeadlineMs) and
 *   defaults to 60 s: below the FUSE op timeout with room for the answer to reach the kernel.
 */
import { FUSE_OP_TIMEOUT_MS } from './fuse-options.js';

export const DEFAULT_OP_DEADLINE_MS = 60_000;
export const OP_DEADLINE_ENV = 'EBSMOUNT_OP_DEADLINE_MS';
/** The deadline must leave this much room below fuse-native's timeout. */
const MARGIN_MS = 10_000;

export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
}

/** The op deadline: `EBSMOUNT_OP_DEADLINE_MS` when it is a whole number of ms in [50, 70000], else 60 s. */
export function opDeadlineMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[OP_DEADLINE_ENV];
  if (raw === undefined || raw === '') return DEFAULT_OP_DEADLINE_MS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 50 || n > FUSE_OP_TIMEOUT_MS - MARGIN_MS) {
    throw new RangeError(`${OP_DEADLINE_ENV}=${raw}: must be a whole number of milliseconds from 50 to ${FUSE_OP_TIMEOUT_MS - MARGIN_MS}`);
  }
  return n;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; err: unknown };

export function runWithDeadline<T>(
  deadlineMs: number,
  work: (signal: AbortSignal) => Promise<T>,
  answer: (outcome: Outcome<T>) => void,
): Promise<void> {
  const controller = new AbortController();
  let answered = false;
  const timer = setTimeout(() => {
    if (answered) return;
    answered = true;
    const err = new DeadlineError(`no answer within the ${deadlineMs / 1000} s op deadline`);
    controller.abort(err);
    answer({ ok: false, err });
  }, deadlineMs);
  let p: Promise<T>;
  try {
    p = work(controller.signal);
  } catch (err) {
    p = Promise.reject(err);
  }
  return p.then(
    (value) => {
      clearTimeout(timer);
      if (answered) return;
      answered = true;
      answer({ ok: true, value });
    },
    (err: unknown) => {
      clearTimeout(timer);
      if (answered) return;
      answered = true;
      answer({ ok: false, err });
    },
  );
}
