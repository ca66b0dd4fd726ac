/**
 * ProgressBar: one self-rewriting status line on stderr for long transfers (import, export,
 * commit): bar, percent, bytes done / total, blocks, rate and ETA.
 *
 * Contract:
 * - Draws only when the stream is a TTY (or `force`); otherwise every method is a no-op, so
 *   piped and logged runs stay clean.
 * - `update(done, extra)` is cheap: redraws at most every `intervalMs` (default 100 ms).
 *   `finish()` draws the final state and ends the line; `clear()` erases it (on failure).
 * - Rate is the average over a sliding window of the last ~5 s (overall average until then);
 *   ETA = remaining / rate.
 */
import { formatBytes } from './format.js';

export { formatBytes };
export interface ProgressOptions {
  label: string;
  /** Total amount of work, in bytes. */
  totalBytes: number;
  stream?: NodeJS.WriteStream;
  force?: boolean;
  intervalMs?: number;
  now?: () => number;
}

export interface ProgressExtra {
  blocks?: number;
  /** Free text after the numbers, e.g. "1234 written". */
  note?: string;
}


export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class ProgressBar {
  readonly enabled: boolean;
  private readonly stream: NodeJS.WriteStream;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly started: number;
  private lastDraw = 0;
  private done = 0;
  private extra: ProgressExtra = {};
  private readonly samples: { t: number; done: number }[] = [];
  private ended = false;
  totalBytes: number;
  readonly label: string;

  constructor(opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.enabled = Boolean(opts.force || this.stream.isTTY);
    this.now = opts.now ?? Date.now;
    this.intervalMs = opts.intervalMs ?? 100;
    this.started = this.now();
    this.totalBytes = opts.totalBytes;
    this.label = opts.label;
    this.samples.push({ t: this.started, done: 0 });
  }

  update(doneBytes: number, extra: ProgressExtra = {}): void {
    if (!this.enabled || this.ended) return;
    this.done = doneBytes;
    this.extra = extra;
    const t = this.now();
    if (t - this.lastDraw < this.intervalMs) return;
    this.lastDraw = t;
    this.samples.push({ t, done: doneBytes });
    while (this.samples.length > 2 && t - this.samples[0]!.t > 5_000) this.samples.shift();
    this.draw(false);
  }

  finish(extra?: ProgressExtra): void {
    if (!this.enabled || this.ended) return;
    if (extra) this.extra = extra;
    this.done = Math.max(this.done, this.totalBytes);
    this.draw(true);
    this.stream.write('\n');
    this.ended = true;
  }

  clear(): void {
    if (!this.enabled || this.ended) return;
    this.stream.write('\r\x1b[K');
    this.ended = true;
  }

  /** Bytes per second over the sliding window. */
  rate(): number {
    const first = this.samples[0]!;
    const t = this.now();
    const dt = (t - first.t) / 1000;
    return dt > 0 ? (this.done - first.done) / dt : 0;
  }

  /** The line as it would be drawn now (exported for tests). */
  line(final = false): string {
    const total = Math.max(this.totalBytes, 1);
    const frac = Math.min(1, this.done / total);
    const elapsed = (this.now() - this.started) / 1000;
    const rate = final ? (elapsed > 0 ? this.done / elapsed : 0) : this.rate();
    const eta = final ? formatDuration(elapsed) : rate > 0 ? formatDuration((this.totalBytes - this.done) / rate) : '--:--';
    const parts = [
      `${(frac * 100).toFixed(0).padStart(3)}%`,
      `${formatBytes(this.done)}/${formatBytes(this.totalBytes)}`,
      ...(this.extra.blocks !== undefined ? [`${this.extra.blocks} blocks`] : []),
      `${formatBytes(rate)}/s`,
      final ? `in ${eta}` : `ETA ${eta}`,
      ...(this.extra.note ? [this.extra.note] : []),
    ];
    const text = parts.join('  ');
    const columns = this.stream.columns || 100;
    // Width from the terminal only, so the bar does not jump as the numbers change length.
    const barWidth = Math.max(10, Math.min(30, columns - 75 - this.label.length));
    const filled = Math.round(frac * barWidth);
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`;
    const out = `${this.label} ${bar} ${text}`;
    return out.length > columns - 1 ? out.slice(0, columns - 1) : out;
  }

  private draw(final: boolean): void {
    this.stream.write(`\r${this.line(final)}\x1b[K`);
  }
}
