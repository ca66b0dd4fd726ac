/**
 * Constants of the EBS direct APIs (DESIGN §1). Every layer uses these instead of literals.
 */
export const BLOCK_SIZE = 524_288;
export const GIB = 1024 ** 3;
export const BLOCKS_PER_GIB = GIB / BLOCK_SIZE; // 2048
export const MIN_VOLUME_GIB = 1;
export const MAX_VOLUME_GIB = 65_536;
/** AWS's default quota of pending snapshots per region. */
export const DEFAULT_MAX_PENDING_SNAPSHOTS = 100;
export const MAX_BLOCK_INDEX = MAX_VOLUME_GIB * BLOCKS_PER_GIB - 1; // 134,217,727
export const MIN_LIST_RESULTS = 100;
export const MAX_LIST_RESULTS = 10_000;
export const DEFAULT_SNAPSHOT_TIMEOUT_MIN = 60;
export const MIN_SNAPSHOT_TIMEOUT_MIN = 10;
export const MAX_SNAPSHOT_TIMEOUT_MIN = 4_320;
/** base64 SHA-256 of one 512 KiB block of zeros. */
export const ZERO_BLOCK_SHA256 = 'B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE=';
/** AWS uses 17 hex digits; older snapshots have 8. */
export const SNAPSHOT_ID_RE = /^snap-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

export function isValidSnapshotId(id: string): boolean {
  return SNAPSHOT_ID_RE.test(id);
}

/** Number of blocks of a volume of `gib` GiB. */
export function blocksInVolume(gib: number): number {
  return gib * BLOCKS_PER_GIB;
}
