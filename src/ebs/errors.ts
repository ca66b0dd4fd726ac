/**
 * EbsError: the one error type the EbsApi layer throws, plus its classification.
 *
 * Contract: `type` is the service's error name (x-amzn-ErrorType), or a transport kind we name
 * ourselves ('NetworkError', 'TimeoutError', 'ChecksumMismatch'). Retry decisions use
 * `retryKind()` and never look at HTTP status alone (RequestThrottledException is a 400).
 */
export type EbsErrorType =
  | 'AccessDeniedException'
  | 'ValidationException'
  | 'ResourceNotFoundException'
  | 'RequestThrottledException'
  | 'ThrottlingException'
  | 'ServiceQuotaExceededException'
  | 'InternalServerException'
  | 'ConcurrentLimitExceededException'
  | 'ConflictException'
  | 'NetworkError'
  | 'TimeoutError'
  | 'ChecksumMismatch'
  | 'CredentialsError'
  | 'UnknownError';

export class EbsError extends Error {
  override readonly name = 'EbsError';
  constructor(
    readonly type: EbsErrorType | string,
    message: string,
    readonly opts: { status?: number; reason?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
  }
  get status(): number | undefined {
    return this.opts.status;
  }
  get reason(): string | undefined {
    return this.opts.reason;
  }
}

/** Reasons (ValidationException / ResourceNotFoundException `Reason`) the code relies on. */
export const Reason = {
  INVALID_BLOCK_TOKEN: 'INVALID_BLOCK_TOKEN',
  INVALID_PAGE_TOKEN: 'INVALID_PAGE_TOKEN',
  UNRELATED_SNAPSHOTS: 'UNRELATED_SNAPSHOTS',
  INVALID_BLOCK: 'INVALID_BLOCK',
  INVALID_VOLUME_SIZE: 'INVALID_VOLUME_SIZE',
  INVALID_PARAMETER_VALUE: 'INVALID_PARAMETER_VALUE',
  INVALID_SNAPSHOT_ID: 'INVALID_SNAPSHOT_ID',
  /** Reading (list/get) a snapshot that is not `completed`. Message names the status. */
  SNAPSHOT_NOT_COMPLETED: 'INVALID_DEPENDENCY_REQUEST',
  /** PutSnapshotBlock / CompleteSnapshot on a snapshot that is no longer pending. */
  SNAPSHOT_NOT_PENDING: 'INVALID_DEPENDENCY_REQUEST',
  SNAPSHOT_NOT_FOUND: 'SNAPSHOT_NOT_FOUND',
  CHECKSUM_MISMATCH: 'INVALID_CHECKSUM',
} as const;

/** What a caller should do with a failure. */
export type RetryKind =
  | 'throttle' // back off harder, then retry
  | 'transient' // 5xx, reset, timeout, corrupt body: retry with backoff
  | 'token' // block token expired/invalid: refresh the block map, then retry
  | 'not-yet' // "snapshot does not exist" right after StartSnapshot: retry for ~2 min
  | 'fatal'; // never retry

export function retryKind(err: unknown, ctx: { afterStart?: boolean } = {}): RetryKind {
  if (!(err instanceof EbsError)) return 'fatal';
  switch (err.type) {
    case 'RequestThrottledException':
    case 'ThrottlingException':
    case 'ConcurrentLimitExceededException':
      return 'throttle';
    case 'InternalServerException':
    case 'NetworkError':
    case 'TimeoutError':
    case 'ChecksumMismatch':
      return 'transient';
    case 'ValidationException':
      return err.reason === Reason.INVALID_BLOCK_TOKEN ? 'token' : 'fatal';
    case 'ResourceNotFoundException':
      return ctx.afterStart ? 'not-yet' : 'fatal';
    default:
      if ((err.status ?? 0) >= 500) return 'transient';
      return 'fatal';
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof EbsError && err.type === 'ResourceNotFoundException';
}
