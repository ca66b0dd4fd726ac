/**
 * LineageStore: serves the blocks of snapshot C that did not change since a base snapshot P of
 * its lineage from P's local copies (disk cache, or another mounted volume's memory cache), with
 * no GetSnapshotBlock; every other read goes to the reader below (C's SnapshotStore).
 *
 * Contract:
 * - readBlock(i): once the ChangedBlockSet covers i (the read waits for the listing to reach it)
 *   and i is not listed as changed, the first base that holds i locally (`peek`, verified by that
 *   base) answers, counted as lineage.hit; `onHit` is told (the disk cache records the block for
 *   C too). Otherwise, or when the listing failed before i, `source.readBlock(i)`. A block listed
 *   as changed, including one changed to zeros or one C does not hold, is never served from a
 *   base, so a lineage hit is always byte-identical to what C holds.
 * - `peek(i)`: the lineage answer only (null when none), never a request below.
 */
import type { Priority } from '../ebs/limiter.js';
import { StatKey, type Stats } from '../util/stats.js';
import type { ReadBlockOptions } from './block-store.js';
import type { PeekableSource } from './disk-cache-store.js';
import type { ChangedBlockSet } from './lineage.js';

/** A block a base answered with; `sha256` when known (the disk cache then records it for C). */
export interface BaseBlock {
  data: Buffer;
  sha256?: Buffer;
}

/**
 * A base snapshot's blocks: its disk cache entries (never a request), or, for a volume mounted
 * alongside, its own read path (one fetch then serves both images). null: no answer.
 */
export interface BasePeek {
  snapshotId: string;
  peek(index: number, priority?: Priority): Promise<BaseBlock | null>;
}

export interface LineageStoreOptions {
  source: PeekableSource;
  changes: ChangedBlockSet;
  bases: BasePeek[];
  stats: Stats;
  onHit?: (index: number, block: BaseBlock) => void;
}

export class LineageStore implements PeekableSource {
  readonly changes: ChangedBlockSet;
  private readonly opts: LineageStoreOptions;

  constructor(opts: LineageStoreOptions) {
    this.opts = opts;
    this.changes = opts.changes;
  }

  get baseSnapshotId(): string {
    return this.changes.baseSnapshotId;
  }

  isKnownZero(index: number): boolean {
    return this.opts.source.isKnownZero?.(index) ?? false;
  }

  async readBlock(index: number, opts: ReadBlockOptions = {}): Promise<Buffer | null> {
    const hit = await this.peek(index, opts.priority ?? 'demand');
    if (hit) return hit.data;
    return this.opts.source.readBlock(index, opts);
  }

  async peek(index: number, priority: Priority = 'demand'): Promise<BaseBlock | null> {
    const { changes } = this;
    if (!(await changes.covers(index)) || changes.isChanged(index)) return null;
    for (const base of this.opts.bases) {
      const block = await base.peek(index, priority);
      if (block) {
        this.opts.stats.inc(StatKey.lineageHit);
        this.opts.onHit?.(index, block);
        return block;
      }
    }
    return null;
  }
}
