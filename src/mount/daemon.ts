/**
 * MountDaemon: one live mount — the opened snapshot (and writable layer), the FUSE mount, the
 * control socket, the registry entry, the mount-table watcher — and its orderly end.
 *
 * Contract:
 * - `MountDaemon.start(config, deps)` opens the snapshot first (so not found / not completed /
 *   access denied / credentials / unreachable fail before anything is mounted; the EbsError is
 *   thrown unchanged for the caller to describe), then the writable layer, then mounts, checks
 *   that the kernel shows the mount with our options, and only then listens on the control socket
 *   and registers. Any failure undoes what was done (nothing stays mounted) and rethrows.
 * - `shutdown(reason)` runs once (later calls join it): unmount unless the mount is already gone
 *   (busy: an error for `ebsmount unmount`, a lazy unmount for signals), wait until the kernel
 *   closed our /dev/fuse fd (no op can arrive any more: the last write is in), then commit the
 *   writable layer as a child snapshot (or discard it with --discard), close everything, remove
 *   the registry entry. `done` resolves with the result; the caller exits with its exitCode.
 * - A commit failure keeps the journal and says how to resume (`ebsmount commit --journal DIR`).
 * - A mount that cannot set up its control socket or registry entry unmounts again without
 *   committing or discarding anything (`keepJournal`): nobody asked for either.
 * - `status()` is what `ebsmount status` shows.
 */
import type { EbsApi } from '../ebs/api.js';
import { expectedMountinfo, type FuseMountSettings } from '../fs/fuse-options.js';
import { FuseAdapter, mountFuse, releaseFuse, type FuseMount } from '../fs/fuse-adapter.js';
import { makeVolumeFile, type OpenedVolume } from '../store/open-volume.js';
import { DEFAULT_DISK_CACHE_BYTES, type DiskCache } from '../store/disk-cache.js';
import { openDiskCacheOrExplain } from '../store/open-disk-cache.js';
import { imagesStatus, openMountVolumes, summedStats } from './multi-volume.js';
import type { BlockReader, BlockWriter } from '../store/block-store.js';
import type { Logger } from '../util/log.js';
import type { MountStatus } from './control-protocol.js';
import { ControlServer } from './control-server.js';
import { fuseDeviceFds, unmountPath, waitForFuseRelease } from './kernel-unmount.js';
import { findMount, type MountEntry } from './mountinfo.js';
import type { MountConfig } from './mount-options.js';
import { MountWatcher } from './mount-watcher.js';
import { partitionViews, type PartitionTableStatus } from './partition-views.js';
import type { MountRegistry } from './registry.js';

/** What the daemon needs of src/writeback/writable-layer.ts (COMMON.md interface). */
export interface WritableLayerLike {
  reader: BlockReader;
  writer: BlockWriter;
  journalDir: string;
  dirtyBlockCount(): number;
  journalStatus?(): { dir: string; diskFullErrors: number; lastDiskFull: { at: string; message: string } | null };
  commit(onProgress?: (done: number, total: number) => void): Promise<{ snapshotId: string | null; pending?: boolean }>;
  discard(): Promise<void>;
  close(): Promise<void>;
}

export interface DaemonDeps {
  api: EbsApi;
  logger: Logger;
  registry: MountRegistry;
  logFile: string | null;
  /** Registry key (default: the pid; in-process tests with several mounts pass their own). */
  key?: string;
  /** Recorded in a writable mount's journal, so `ebsmount commit --journal` reaches the same service. */
  endpoint?: string;
  region?: string;
}

export type ShutdownReason = 'unmount' | 'signal' | 'external' | 'error';

export interface ShutdownOptions {
  discard?: boolean;
  /** Neither commit nor discard: close the writable layer and keep its journal (a mount that failed to start). */
  keepJournal?: boolean;
  /** Fall back to a lazy unmount when the mount is busy (signals). */
  allowLazy?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface ShutdownResult {
  snapshotId: string | null;
  message: string;
  exitCode: number;
}

export class BusyError extends Error {
  override readonly name = 'BusyError';
}

type State = 'mounted' | 'unmounting' | 'committing' | 'stopped';

export class MountDaemon {
  readonly done: Promise<ShutdownResult>;
  private resolveDone!: (r: ShutdownResult) => void;
  private shutting: Promise<ShutdownResult> | undefined;
  private state: State = 'mounted';
  private readonly progressListeners = new Set<(done: number, total: number) => void>();
  private readonly startedAt = new Date();
  private readonly watcher: MountWatcher;
  private readonly control: ControlServer;
  private readonly key: string;

  private constructor(
    readonly config: MountConfig,
    private readonly deps: DaemonDeps,
    readonly opened: OpenedVolume,
    readonly layer: WritableLayerLike | undefined,
    readonly adapter: FuseAdapter,
    readonly mount: FuseMount,
    readonly entry: MountEntry,
    readonly partitionTable: PartitionTableStatus,
    readonly diskCache?: DiskCache,
    /** The other volumes of a multi-snapshot mount. */
    readonly others: OpenedVolume[] = [],
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.watcher = new MountWatcher(config.mountpoint, entry.dev, () => {
      deps.logger.info({ mountpoint: config.mountpoint }, 'the mount was unmounted from outside');
      void this.shutdown('external');
    });
    this.key = deps.key ?? String(process.pid);
    this.control = new ControlServer(deps.registry.socketPath(this.key), async (req, send) => {
      if (req.op === 'status') return send({ ok: true, status: this.status() });
      try {
        const r = await this.shutdown('unmount', {
          discard: req.discard,
          onProgress: (done, total) => send({ progress: { done, total } }),
        });
        if (r.exitCode === 0) send({ ok: true, snapshotId: r.snapshotId, message: r.message });
        else send({ ok: false, error: r.message });
      } catch (err) {
        send({ ok: false, error: (err as Error).message });
      }
    });
  }

  get imagePath(): string {
    return `${this.config.mountpoint}/${this.adapter.fileName}`;
  }

  static async start(config: MountConfig, deps: DaemonDeps): Promise<MountDaemon> {
    const { api, logger } = deps;
    const diskCache = config.diskCacheDir
      ? openDiskCacheOrExplain(config.diskCacheDir, config.diskCacheSizeBytes ?? DEFAULT_DISK_CACHE_BYTES, logger)
      : undefined;
    let volumes: OpenedVolume[];
    try {
      volumes = await openMountVolumes(api, config, { logger, diskCache });
    } catch (err) {
      diskCache?.close();
      throw err;
    }
    const opened = volumes[0]!;
    const others = volumes.slice(1);
    logger.info({ snapshotId: config.snapshotId, volumeSizeGiB: opened.volumeSizeGiB }, 'snapshot opened');
    let layer: WritableLayerLike | undefined;
    let mount: FuseMount | undefined;
    try {
      if (config.writable) layer = await openLayer(opened, config, deps);
      const file = makeVolumeFile(opened, layer?.writer, layer?.reader ?? opened.reader);
      const { views, table } = await partitionViews(file, config.snapshotId, layer?.reader ?? opened.reader, { enabled: config.partitions !== false, logger });
      for (const v of others) {
        const more = await partitionViews(makeVolumeFile(v), v.snapshotId, v.reader, { enabled: config.partitions !== false, logger });
        views.push(...more.views);
      }
      const adapter = new FuseAdapter({
        file,
        views,
        snapshotId: config.snapshotId,
        allowOther: config.allowOther,
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        logger,
      });
      const settings: FuseMountSettings = { snapshotId: config.snapshotId, writable: config.writable, allowOther: config.allowOther };
      mount = await mountFuse(config.mountpoint, adapter, settings).catch((err: unknown) => {
        throw new Error(`cannot mount FUSE at ${config.mountpoint}: ${(err as Error).message}`);
      });
      const entry = await findMount(config.mountpoint);
      if (!entry) throw new Error(`the kernel does not show the mount at ${config.mountpoint}`);
      checkMountinfo(entry, settings, logger);
      logger.info({ mountpoint: config.mountpoint, options: mount.optionString, writable: config.writable, journal: layer?.journalDir }, 'mounted');
      const daemon = new MountDaemon(config, deps, opened, layer, adapter, mount, entry, table, diskCache, others);
      try {
        await deps.registry.ensureDir();
        await daemon.control.listen();
        await deps.registry.register({
          key: daemon.key,
          pid: process.pid,
          snapshotId: config.snapshotId,
          mountpoint: config.mountpoint,
          socket: deps.registry.socketPath(daemon.key),
          log: deps.logFile,
          writable: config.writable,
          startedAt: daemon.startedAt.toISOString(),
        });
      } catch (err) {
        // Nobody asked for a commit: unmount, keep whatever the journal holds, say so.
        await daemon.shutdown('error', { allowLazy: true, keepJournal: true });
        throw err;
      }
      daemon.watcher.start();
      return daemon;
    } catch (err) {
      if (mount) await unmountPath(config.mountpoint, { lazy: true });
      if (layer) await layer.close().catch(() => undefined);
      for (const v of volumes) v.close();
      diskCache?.close();
      throw err;
    }
  }

  status(): MountStatus {
    const { config, opened } = this;
    return {
      pid: process.pid,
      snapshotId: config.snapshotId,
      mountpoint: config.mountpoint,
      imagePath: this.imagePath,
      volumeSizeGiB: opened.volumeSizeGiB,
      sizeBytes: opened.sizeBytes,
      writable: config.writable,
      allowOther: config.allowOther,
      log: this.deps.logFile,
      startedAt: this.startedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
      allocatedBlocks: opened.allocatedBlocks(),
      allocatedBlocksFinal: opened.counter.done,
      dirtyBlocks: this.layer ? this.layer.dirtyBlockCount() : null,
      journal: this.layer?.journalStatus?.() ?? null,
      cacheSizeBytes: config.cacheSizeBytes,
      cachedBytes: [opened, ...this.others].reduce((n, v) => n + v.cache.cachedBytes, 0),
      openHandles: this.adapter.openHandles,
      files: this.adapter.views.map((v) => ({ name: v.name, offsetBytes: v.offset, sizeBytes: v.length, writable: v.writable, partition: v.partition })),
      partitionTable: this.partitionTable,
      state: this.state,
      stats: summedStats([opened, ...this.others]),
      ...(this.others.length ? { images: imagesStatus([opened, ...this.others], config.mountpoint) } : {}),
      diskCache: this.diskCache
        ? { dir: this.diskCache.dir, sizeBytes: this.diskCache.sizeBytes, storedBytes: this.diskCache.storedBytes }
        : null,
      lineage: opened.local.lineage
        ? { base: opened.local.lineage.baseSnapshotId, changedBlocks: opened.local.lineage.changes.changedCount, complete: opened.local.lineage.changes.complete }
        : null,
    };
  }

  /** Ends the mount once; later calls (and their progress listeners) join the first. */
  shutdown(reason: ShutdownReason, opts: ShutdownOptions = {}): Promise<ShutdownResult> {
    if (opts.onProgress) this.progressListeners.add(opts.onProgress);
    if (this.shutting) return this.shutting;
    const run = this.runShutdown(reason, opts);
    this.shutting = run.then(
      (r) => r,
      (err: unknown) => {
        // Unmount refused (busy): stay mounted and serving; a later request may try again.
        this.shutting = undefined;
        this.state = 'mounted';
        if (opts.onProgress) this.progressListeners.delete(opts.onProgress);
        throw err;
      },
    );
    return this.shutting;
  }

  private async runShutdown(reason: ShutdownReason, opts: ShutdownOptions): Promise<ShutdownResult> {
    const { logger } = this.deps;
    const mnt = this.config.mountpoint;
    this.state = 'unmounting';
    logger.info({ reason }, 'unmounting');
    if (reason !== 'external' && (await this.watcher.poll())) {
      let r = await unmountPath(mnt);
      if (!r.ok && r.busy && opts.allowLazy) {
        logger.warn({ mountpoint: mnt, detail: r.message }, 'mount is busy: unmounting lazily; the image stays in use until its last user closes it');
        r = await unmountPath(mnt, { lazy: true });
      }
      if (!r.ok && (await this.watcher.poll())) {
        logger.warn({ detail: r.message }, 'unmount failed');
        throw new BusyError(
          r.busy
            ? `${mnt} is busy: close files on it and detach loop devices of ${this.imagePath} (losetup -j ${this.imagePath}), then try again`
            : `cannot unmount ${mnt}: ${r.message}`,
        );
      }
    }
    this.watcher.stop();
    await waitForFuseRelease({
      onWait: (ms) => logger.info({ waitedSeconds: Math.round(ms / 1000), openHandles: this.adapter.openHandles }, 'waiting for the kernel to release the image'),
    });
    logger.info({ stats: this.opened.stats.snapshot() }, 'unmounted');

    let result: ShutdownResult = { snapshotId: null, message: `unmounted ${mnt}`, exitCode: 0 };
    if (this.layer && opts.keepJournal) {
      const dirty = this.layer.dirtyBlockCount();
      await this.layer.close().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'closing the journal failed'));
      result = {
        snapshotId: null,
        message: `unmounted ${mnt} without committing${dirty > 0 ? `; the journal ${this.layer.journalDir} is kept (${dirty} dirty blocks): ebsmount commit --journal ${this.layer.journalDir}` : ''}`,
        exitCode: 1,
      };
    } else if (this.layer) result = await this.finishWritable(this.layer, opts.discard || this.config.discard);
    else if (reason === 'error') result = { ...result, exitCode: 1 };

    this.state = 'stopped';
    this.opened.close();
    for (const v of this.others) v.close();
    this.diskCache?.close();
    this.deps.api.close?.();
    await this.control.close().catch(() => undefined);
    await this.deps.registry.unregister(this.key).catch(() => undefined);
    releaseFuse(this.mount);
    logger.info({ snapshotId: result.snapshotId, exitCode: result.exitCode }, result.message);
    this.resolveDone(result);
    return result;
  }

  private async finishWritable(layer: WritableLayerLike, discard: boolean): Promise<ShutdownResult> {
    const { logger } = this.deps;
    const dirty = layer.dirtyBlockCount();
    if (discard) {
      await layer.discard();
      return { snapshotId: null, message: `writes discarded (${dirty} dirty block${dirty === 1 ? '' : 's'}); no snapshot created`, exitCode: 0 };
    }
    this.state = 'committing';
    logger.info({ dirtyBlocks: dirty, journal: layer.journalDir }, 'committing');
    try {
      const { snapshotId, pending } = await layer.commit((done, total) => {
        for (const l of this.progressListeners) l(done, total);
      });
      await layer.close().catch(() => undefined);
      if (!snapshotId) return { snapshotId: null, message: 'no writes, no snapshot created', exitCode: 0 };
      const note = pending
        ? `; it is still pending: the journal ${layer.journalDir} is kept until it is completed (confirm with: ebsmount commit --journal ${layer.journalDir})`
        : '';
      return { snapshotId, message: `committed ${dirty} block${dirty === 1 ? '' : 's'} as ${snapshotId} (child of ${this.config.snapshotId})${note}`, exitCode: 0 };
    } catch (err) {
      await layer.close().catch(() => undefined);
      const why = err instanceof Error ? err.message : String(err);
      logger.error({ err: why, journal: layer.journalDir }, 'commit failed');
      return {
        snapshotId: null,
        message: why.includes('ebsmount commit --journal')
          ? `commit failed: ${why}`
          : `commit failed: ${why}; the writes are kept in ${layer.journalDir}: resume with: ebsmount commit --journal ${layer.journalDir}`,
        exitCode: 1,
      };
    }
  }

  /** After `done`: waits until the final answers on the control socket have gone out. */
  drainControl(ms?: number): Promise<void> {
    return this.control.drained(ms);
  }

  /** For tests and diagnostics: this process's /dev/fuse fds. */
  static fuseFds(): Promise<number> {
    return fuseDeviceFds();
  }
}

async function openLayer(opened: OpenedVolume, config: MountConfig, deps: DaemonDeps): Promise<WritableLayerLike> {
  // Loaded only for writable mounts: the read-only path does not load the writeback code.
  const { openWritableLayer } = await import('../writeback/writable-layer.js');
  return openWritableLayer(opened, {
    api: deps.api,
    journalDir: config.journalDir,
    description: config.description,
    tags: config.tags,
    uploadConcurrency: config.uploadConcurrency,
    logger: deps.logger,
    endpoint: deps.endpoint,
    region: deps.region,
  });
}

/** Logs a warning for every option the kernel should show and does not. */
function checkMountinfo(entry: MountEntry, settings: FuseMountSettings, logger: Logger): void {
  const want = expectedMountinfo(settings);
  const missing = [
    ...(entry.fstype === want.fstype ? [] : [`type ${want.fstype}`]),
    ...(entry.source === want.source ? [] : [`source ${want.source}`]),
    ...want.superOptions.filter((o) => !entry.superOptions.includes(o)),
    ...want.mountOptions.filter((o) => !entry.mountOptions.includes(o)),
  ];
  if (missing.length) logger.warn({ missing, fstype: entry.fstype, superOptions: entry.superOptions }, 'the kernel does not show some mount options');
}
