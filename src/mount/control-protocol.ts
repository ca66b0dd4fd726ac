/**
 * The control protocol between the CLI and a mount daemon: newline-delimited JSON over the
 * daemon's unix socket (registry dir, `<pid>.sock`, mode 0600).
 *
 * Requests: `{op:'status'}` → one `{ok:true, status}`; `{op:'unmount', discard?}` → any number of
 * `{progress:{done,total}}` lines while a writable mount commits, then one final
 * `{ok:true, snapshotId, message}` or `{ok:false, error}`. A final message has `ok`. The daemon
 * closes the connection after the final message.
 */
export interface MountStatus {
  pid: number;
  snapshotId: string;
  mountpoint: string;
  imagePath: string;
  volumeSizeGiB: number;
  sizeBytes: number;
  writable: boolean;
  allowOther: boolean;
  log: string | null;
  startedAt: string;
  uptimeSeconds: number;
  allocatedBlocks: number;
  allocatedBlocksFinal: boolean;
  dirtyBlocks: number | null;
  /** A writable mount's journal: where, and writes refused because its disk is full. */
  journal?: { dir: string; diskFullErrors: number; lastDiskFull: { at: string; message: string } | null } | null;
  cacheSizeBytes: number;
  cachedBytes: number;
  openHandles: number;
  /** The files of the mount's directory (whole disk first, then partitions). */
  files?: { name: string; offsetBytes: number; sizeBytes: number; writable: boolean; partition?: number }[];
  /** What the partition table said (scheme, notes on damage); 'off' with --no-partitions. */
  partitionTable?: { scheme: string; notes: string[] };
  state: 'mounted' | 'unmounting' | 'committing' | 'stopped';
  stats: Record<string, number>;
  /** `--disk-cache` (shared by every mount naming it), or null. */
  diskCache?: { dir: string; sizeBytes: number; storedBytes: number } | null;
  /** The lineage base whose local blocks serve unchanged blocks, or null. */
  lineage?: { base: string; changedBlocks: number; complete: boolean } | null;
  /** A multi-snapshot mount: each image (the top-level stats are then their sum). */
  images?: ImageStatus[];
}

export interface ImageStatus {
  snapshotId: string;
  imagePath: string;
  volumeSizeGiB: number;
  allocatedBlocks: number;
  cachedBytes: number;
  lineage: { base: string; changedBlocks: number; complete: boolean } | null;
  stats: Record<string, number>;
}

export type ControlRequest = { op: 'status' } | { op: 'unmount'; discard?: boolean };

export interface ProgressMessage {
  progress: { done: number; total: number };
}

export type FinalMessage =
  | { ok: true; status?: MountStatus; snapshotId?: string | null; message?: string }
  | { ok: false; error: string };

export type ControlMessage = ProgressMessage | FinalMessage;

export function isFinal(m: ControlMessage): m is FinalMessage {
  return 'ok' in m;
}
