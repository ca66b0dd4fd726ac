/**
 * IoError: the failure a VolumeFile operation reports, named by the errno the FUSE adapter
 * answers with. Messages name the snapshot and block when relevant, never tokens or credentials.
 */
export type IoErrorCode = 'EIO' | 'EROFS' | 'EINVAL' | 'ENOSPC' | 'EFBIG';

export class IoError extends Error {
  override readonly name = 'IoError';
  constructor(
    readonly code: IoErrorCode,
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
  }
}

export function isIoError(err: unknown): err is IoError {
  return err instanceof IoError;
}
