/**
 * SequentialDetector: the pure read-ahead schedule (no I/O). Fed the block range of every read,
 * it says which blocks to fetch ahead.
 *
 * Model (in the manner of the kernel's readahead):
 * - Up to `maxStreams` streams, each at the highest block it has read (`pos`). A read belongs to
 *   the stream whose pos is nearest, if it starts within [pos - backwardTolerance,
 *   pos + 1 + forwardTolerance]: this tolerates pieces arriving slightly out of order (a loop
 *   device with a filesystem on top sends ≤128 KiB pieces, several in flight) and small gaps.
 *   Until its window is open a stream only grows by contiguous reads (start ≤ pos + 1).
 *   Any other read is a jump: it starts a new stream in place of the least recently used one, so
 *   random access never prefetches and two interleaved sequential readers keep their own streams.
 * - Once a stream has advanced `triggerBlocks` blocks, its window opens at `initialWindowBlocks`
 *   and doubles with every further forward read of the stream (a 128 KiB piece counts: the run is
 *   established, so ramp up within a block or two), up to `maxWindowBlocks`.
 * - A plan is the part of [pos+1, pos+window] not handed out before (so per read the work is the
 *   few blocks the window moved, never a scan). The caller reports how far it really issued with
 *   `issuedThrough` (it may stop early when the cache's prefetch budget is full; the rest is
 *   planned again on the next read).
 */
export interface SequentialDetectorOptions {
  /** Blocks in the volume (plans never pass the last one). */
  totalBlocks: number;
  /** Cap of the window (read-ahead, bounded by the cache budget). 0 disables read-ahead. */
  maxWindowBlocks: number;
  initialWindowBlocks?: number;
  triggerBlocks?: number;
  maxStreams?: number;
  backwardTolerance?: number;
  forwardTolerance?: number;
}

export interface PrefetchPlan {
  stream: number;
  /** First and last block to fetch, inclusive. */
  start: number;
  end: number;
}

interface Stream {
  pos: number;
  advanced: number;
  window: number;
  issuedThrough: number;
  lastUse: number;
}

export class SequentialDetector {
  readonly maxWindowBlocks: number;
  private readonly totalBlocks: number;
  private readonly initialWindow: number;
  private readonly trigger: number;
  private readonly maxStreams: number;
  private readonly backward: number;
  private readonly forward: number;
  private readonly streams: Stream[] = [];
  private tick = 0;

  constructor(opts: SequentialDetectorOptions) {
    this.totalBlocks = opts.totalBlocks;
    this.maxWindowBlocks = Math.max(0, Math.floor(opts.maxWindowBlocks));
    this.initialWindow = Math.min(this.maxWindowBlocks, opts.initialWindowBlocks ?? 4);
    this.trigger = opts.triggerBlocks ?? 2;
    this.maxStreams = Math.max(1, opts.maxStreams ?? 8);
    this.backward = opts.backwardTolerance ?? 4;
    this.forward = opts.forwardTolerance ?? 4;
  }

  /** Current window of each stream (for tests and status). */
  windows(): number[] {
    return this.streams.map((s) => s.window);
  }

  reset(): void {
    this.streams.length = 0;
  }

  onRead(firstBlock: number, lastBlock: number): PrefetchPlan | null {
    this.tick++;
    const streamIndex = this.match(firstBlock);
    if (streamIndex < 0) {
      this.startStream(lastBlock);
      return null;
    }
    const s = this.streams[streamIndex]!;
    s.lastUse = this.tick;
    if (lastBlock > s.pos) {
      s.advanced += lastBlock - s.pos;
      s.pos = lastBlock;
      if (s.window === 0 && s.advanced >= this.trigger) {
        s.window = this.initialWindow;
      } else if (s.window > 0) {
        this.grow(s);
      }
    } else if (s.window > 0 && firstBlock >= s.pos) {
      // Another piece of the current block: the stream goes on, the window keeps growing.
      this.grow(s);
    }
    if (s.window === 0) return null;
    const start = Math.max(s.issuedThrough + 1, s.pos + 1);
    const end = Math.min(s.pos + s.window, this.totalBlocks - 1);
    if (start > end) return null;
    return { stream: streamIndex, start, end };
  }

  /** The caller fetched (or found present) every block of the plan up to `lastBlock`. */
  issuedThrough(stream: number, lastBlock: number): void {
    const s = this.streams[stream];
    if (s && lastBlock > s.issuedThrough) s.issuedThrough = lastBlock;
  }

  private grow(s: Stream): void {
    s.window = Math.min(this.maxWindowBlocks, s.window * 2);
  }

  private match(firstBlock: number): number {
    let best = -1;
    let bestDistance = Infinity;
    for (let i = 0; i < this.streams.length; i++) {
      const s = this.streams[i]!;
      // Gaps are tolerated only once a stream is established: until then it must be contiguous,
      // so scattered random reads do not add up to a run by chance.
      const forward = s.window > 0 ? this.forward : 0;
      if (firstBlock < s.pos - this.backward || firstBlock > s.pos + 1 + forward) continue;
      const distance = Math.abs(firstBlock - (s.pos + 1));
      if (distance < bestDistance) {
        best = i;
        bestDistance = distance;
      }
    }
    return best;
  }

  private startStream(lastBlock: number): void {
    const fresh: Stream = { pos: lastBlock, advanced: 0, window: 0, issuedThrough: lastBlock, lastUse: this.tick };
    if (this.streams.length < this.maxStreams) {
      this.streams.push(fresh);
      return;
    }
    let oldest = 0;
    for (let i = 1; i < this.streams.length; i++) {
      if (this.streams[i]!.lastUse < this.streams[oldest]!.lastUse) oldest = i;
    }
    this.streams[oldest] = fresh;
  }
}
