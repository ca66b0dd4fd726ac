/**
 * describeEbsError: one line a user can act on, for any failure of an EbsApi call.
 *
 * Contract:
 * - Always a single line (no newline, no stack, never a token or credential).
 * - Known cases get a fixed wording with the next step in parentheses: snapshot not found, not
 *   completed (with its status), access denied (IAM actions for the operation, and the KMS key
 *   policy for an encrypted snapshot), no credentials, no region, endpoint unreachable (refused /
 *   host not found / reset / timeout), throttled, quota, service failure, data corruption.
 * - Anything else: "<type>: <message>".
 * `toUserError` wraps the line in a UserError (exit code 1) for the CLI.
 */
import { EbsError, Reason } from '../ebs/errors.js';
import { UserError } from './user-error.js';

export interface ErrorContext {
  snapshotId?: string;
  endpoint?: string;
  /** How the snapshot is referred to: 'snapshot' (default), 'parent snapshot'... */
  role?: string;
  /** Which IAM actions the message names. */
  op?: 'read' | 'write';
}

const NETWORK_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ECONNABORTED: 'connection aborted',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EHOSTDOWN: 'host down',
  ENETDOWN: 'network down',
  ETIMEDOUT: 'timed out',
};

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

function endpointName(ctx: ErrorContext): string {
  return ctx.endpoint ? `the EBS endpoint ${ctx.endpoint}` : 'the EBS endpoint';
}

export function describeEbsError(err: unknown, ctx: ErrorContext = {}): string {
  const what = `${ctx.role ?? 'snapshot'}${ctx.snapshotId ? ` ${ctx.snapshotId}` : ''}`;
  if (err instanceof UserError) return oneLine(err.message);
  if (!(err instanceof EbsError)) {
    const msg = err instanceof Error ? err.message : String(err);
    return oneLine(msg || 'unknown error');
  }
  const msg = oneLine(err.message);
  switch (err.type) {
    case 'ResourceNotFoundException':
      if (ctx.snapshotId || /snapshot/i.test(msg)) return `${what} not found (check the id and the region)`;
      return `not found: ${msg}`;
    case 'ValidationException': {
      if (err.reason === Reason.SNAPSHOT_NOT_COMPLETED && ctx.op !== 'write') {
        const status = /\b(pending|error)\b/i.exec(msg)?.[1]?.toLowerCase();
        if (status === 'error') return `${what} is in state error and can never be read`;
        return `${what} is not completed yet (status ${status ?? 'pending'})`;
      }
      if (err.reason === Reason.UNRELATED_SNAPSHOTS) return `the snapshots are not of one lineage (${msg})`;
      if (err.reason === Reason.INVALID_BLOCK_TOKEN) return `block tokens of ${what} kept failing (${msg})`;
      if (err.reason === Reason.INVALID_SNAPSHOT_ID) return `invalid snapshot id${ctx.snapshotId ? ` ${ctx.snapshotId}` : ''} (${msg})`;
      return `invalid request${ctx.snapshotId ? ` for ${what}` : ''}: ${msg}`;
    }
    case 'AccessDeniedException': {
      if (/signature|security token|access key|credential|authenticat/i.test(msg)) {
        return `access denied by ${endpointName(ctx)}: ${msg} (check the access key and secret)`;
      }
      if (err.reason === 'DEPENDENCY_ACCESS_DENIED' || /\bkms\b/i.test(msg)) {
        return `access denied to the KMS key of ${what} (check the key policy: kms:Decrypt${ctx.op === 'write' ? ', kms:GenerateDataKey' : ''} and kms:DescribeKey for your role)`;
      }
      const actions = ctx.op === 'write'
        ? 'ebs:StartSnapshot/PutSnapshotBlock/CompleteSnapshot'
        : 'ebs:ListSnapshotBlocks/GetSnapshotBlock';
      const to = ctx.snapshotId ? ` to ${what}` : '';
      return `access denied${to} (check IAM permissions for ${actions}, and the KMS key policy if the snapshot is encrypted)`;
    }
    case 'CredentialsError':
      if (/profile/i.test(msg) && !/could not load credentials from any providers/i.test(msg)) {
        return `cannot load AWS credentials: ${msg} (check --profile / AWS_PROFILE and ~/.aws/config)`;
      }
      return 'no AWS credentials found (set AWS_PROFILE, --profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)';
    case 'ConfigError':
      return 'no AWS region configured (use --region, AWS_REGION, or a region in the profile)';
    case 'NetworkError': {
      const word = NETWORK_WORDS[err.reason ?? ''] ?? msg;
      return `cannot reach ${endpointName(ctx)} (${word})`;
    }
    case 'TimeoutError':
      return `${endpointName(ctx)} did not answer in time (timed out after retries)`;
    case 'RequestThrottledException':
    case 'ThrottlingException':
    case 'ConcurrentLimitExceededException':
      return `requests were throttled by EBS and retries ran out (${msg}; try a lower --concurrency)`;
    case 'ServiceQuotaExceededException':
      return `an EBS service quota was exceeded: ${msg} (e.g. too many pending snapshots)`;
    case 'InternalServerException':
      return `the EBS service failed repeatedly (InternalServerException: ${msg})`;
    case 'ChecksumMismatch':
      return `block data of ${what} failed its SHA-256 check on every attempt (${msg})`;
    case 'ConflictException':
      return `conflict: ${msg}`;
    case 'AbortError':
      return 'interrupted';
    default:
      if ((err.status ?? 0) >= 500) return `the EBS service failed repeatedly (${err.type}: ${msg})`;
      return `${err.type}: ${msg}`;
  }
}

export function toUserError(err: unknown, ctx: ErrorContext = {}, exitCode = 1): UserError {
  if (err instanceof UserError) return err;
  return new UserError(describeEbsError(err, ctx), exitCode, { cause: err });
}
