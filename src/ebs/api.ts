/**
 * EbsApi: the narrow interface every layer above uses to talk to the EBS direct APIs.
 *
 * Contract:
 * - One method per operation, one request per call: no retries, no pagination loops and no
 *   checksum verification here (those belong to the callers: retry.ts, block-map, SnapshotStore).
 * - Failures are thrown as EbsError (errors.ts), whatever the transport, so callers classify them
 *   by `type`/`reason`, never by HTTP status alone.
 * - Implementations: SdkEbsApi (@aws-sdk/client-ebs, talks HTTP to AWS or `ebsmount serve`) and
 *   MemoryEbsApi (an in-memory double with fault hooks, for unit tests).
 * - Volume sizes are in GiB, block indexes are 512 KiB units, checksums are base64 SHA-256.
 */
export interface Tag {
  key: string;
  value: string;
}

export interface BlockRef {
  index: number;
  token: string;
}

export interface ListPageOptions {
  startingBlockIndex?: number;
  nextToken?: string;
  maxResults?: number;
  signal?: AbortSignal;
}

export interface BlockPage {
  blocks: BlockRef[];
  nextToken?: string;
  /** When the tokens of this page stop working. */
  expiryTime?: Date;
  volumeSizeGiB: number;
  blockSize: number;
}

export interface ChangedBlock {
  index: number;
  /** Absent where the first snapshot lacks the block. */
  firstToken?: string;
  secondToken?: string;
}

export interface ChangedPage {
  blocks: ChangedBlock[];
  nextToken?: string;
  expiryTime?: Date;
  volumeSizeGiB: number;
  blockSize: number;
}

export interface BlockData {
  data: Buffer;
  /** base64 SHA-256 the service claims for `data`; unverified. */
  checksum: string;
  checksumAlgorithm: string;
  dataLength: number;
}

export interface StartSnapshotInput {
  volumeSizeGiB: number;
  parentSnapshotId?: string;
  description?: string;
  tags?: Tag[];
  clientToken?: string;
  timeoutMinutes?: number;
  encrypted?: boolean;
  kmsKeyArn?: string;
  signal?: AbortSignal;
}

export type SnapshotStatus = 'pending' | 'completed' | 'error';

export interface StartedSnapshot {
  snapshotId: string;
  status: SnapshotStatus;
  volumeSizeGiB: number;
  blockSize: number;
  parentSnapshotId?: string;
  description?: string;
  tags?: Tag[];
  startTime?: Date;
  ownerId?: string;
  /** The KMS key of an encrypted snapshot (a child inherits its parent's): absent when not encrypted. */
  kmsKeyArn?: string;
}

export interface EbsApi {
  listSnapshotBlocks(snapshotId: string, opts?: ListPageOptions): Promise<BlockPage>;
  /** `firstSnapshotId` undefined lists every block of the second snapshot. */
  listChangedBlocks(
    firstSnapshotId: string | undefined,
    secondSnapshotId: string,
    opts?: ListPageOptions,
  ): Promise<ChangedPage>;
  getSnapshotBlock(
    snapshotId: string,
    blockIndex: number,
    blockToken: string,
    opts?: { signal?: AbortSignal },
  ): Promise<BlockData>;
  startSnapshot(input: StartSnapshotInput): Promise<StartedSnapshot>;
  putSnapshotBlock(
    snapshotId: string,
    blockIndex: number,
    data: Buffer,
    checksumBase64: string,
    opts?: { progress?: number; signal?: AbortSignal },
  ): Promise<void>;
  completeSnapshot(
    snapshotId: string,
    changedBlocksCount: number,
    opts?: { linearChecksum?: string; signal?: AbortSignal },
  ): Promise<{ status: SnapshotStatus }>;
  /** Releases sockets; the object must not be used afterwards. */
  close?(): void;
}
