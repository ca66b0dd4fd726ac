/**
 * `ebsmount [mount] SNAPSHOT_ID MOUNTPOINT` (the default command): mount a snapshot as
 * SNAPSHOT_ID.img, in the background unless --foreground. Options and their defaults live here;
 * the work is in src/mount/run-mount.ts.
 */
import type { Argv, CommandModule } from 'yargs';
import { withAwsOptions } from '../aws-options.js';
import { runMount, type MountArgv } from '../../mount/run-mount.js';
import { MOUNT_DEFAULTS } from '../../mount/mount-options.js';

export const mountCommand: CommandModule<object, MountArgv> = {
  command: ['mount <snapshot> <mountpoint> [more..]', '$0 <snapshot> <mountpoint> [more..]'],
  describe: 'Mount a snapshot as MOUNTPOINT/SNAPSHOT_ID.img, each partition as SNAPSHOT_ID-pN.img (the default command)',
  builder: (y: Argv) =>
    withAwsOptions(y)
      .positional('snapshot', { type: 'string', describe: 'snapshot id (snap-...)', demandOption: true })
      .positional('mountpoint', { type: 'string', describe: 'an empty directory', demandOption: true })
      .positional('more', { type: 'string', array: true, describe: 'more snapshots, then the mountpoint last: SNAP_A SNAP_B ... MOUNTPOINT serves each as SNAP.img in one daemon' })
      .option('foreground', { type: 'boolean', alias: 'f', default: false, describe: 'stay attached and log to the terminal' })
      .option('cache-size', { type: 'string', default: MOUNT_DEFAULTS.cacheSize, describe: 'block cache size (512M, 1G...)' })
      .option('read-ahead', { type: 'string', default: MOUNT_DEFAULTS.readAhead, describe: 'largest read-ahead window for sequential reads' })
      .option('max-concurrency', { type: 'number', default: MOUNT_DEFAULTS.maxConcurrency, describe: 'EBS requests in flight' })
      .option('request-rate', { type: 'number', default: MOUNT_DEFAULTS.requestRate, describe: 'GetSnapshotBlock requests per second (the per-snapshot quota is 1000)' })
      .option('allow-other', { type: 'boolean', default: false, describe: 'let other users read the image (FUSE allow_other)' })
      .option('log-file', { type: 'string', describe: 'log file (default: ~/.local/state/ebsmount/logs/SNAP-TIME.log; terminal with --foreground)' })
      .option('log-level', { type: 'string', default: MOUNT_DEFAULTS.logLevel, choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] })
      .option('writable', { type: 'boolean', alias: 'w', default: false, describe: 'accept writes (journaled) and commit them as a child snapshot on unmount' })
      .option('description', { type: 'string', describe: 'description of the child snapshot (--writable)' })
      .option('tag', { type: 'string', array: true, describe: 'tag key=value of the child snapshot (repeatable; --writable)' })
      .option('journal-dir', { type: 'string', describe: 'journal directory (--writable; default under ~/.local/state/ebsmount/journals)' })
      .option('upload-concurrency', { type: 'number', default: MOUNT_DEFAULTS.uploadConcurrency, describe: 'PutSnapshotBlock requests in flight at commit' })
      .option('discard', { type: 'boolean', default: false, describe: 'throw the writes away on unmount instead of committing (--writable)' })
      .option('partitions', { type: 'boolean', default: true, describe: 'serve each partition of the disk as MOUNTPOINT/SNAPSHOT_ID-pN.img too (--no-partitions: only the whole disk)' })
      .option('disk-cache', { type: 'string', describe: 'keep fetched blocks (verified) in this directory across mounts and exports; off by default' })
      .option('disk-cache-size', { type: 'string', default: MOUNT_DEFAULTS.diskCacheSize, describe: 'most bytes of blocks the disk cache keeps (least recently used go first)' })
      .option('base', { type: 'string', describe: 'a snapshot of the same lineage whose cached blocks serve the unchanged blocks (--disk-cache; default: the most recently used related ones)' })
      .option('daemon-fd', { type: 'number', hidden: true }) as unknown as Argv<MountArgv>,
  handler: (argv) => runMount(argv),
};
