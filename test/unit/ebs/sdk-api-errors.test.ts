/**
 * describeEbsError / toUserError: every failure kind the CLI reports becomes one actionable line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeEbsError, toUserError } from '../../../src/errors/describe-error.js';
import { UserError } from '../../../src/errors/user-error.js';
import { EbsError, Reason } from '../../../src/ebs/errors.js';

const SNAP = 'snap-0123456789abcdef0';

function oneLine(s: string): void {
  assert.ok(!s.includes('\n'), `not one line: ${s}`);
  assert.ok(s.length > 0);
}

test('not found names the snapshot and suggests checking id and region', () => {
  const m = describeEbsError(new EbsError('ResourceNotFoundException', `The snapshot '${SNAP}' does not exist.`, { status: 404, reason: 'SNAPSHOT_NOT_FOUND' }), { snapshotId: SNAP });
  assert.equal(m, `snapshot ${SNAP} not found (check the id and the region)`);
  const p = describeEbsError(new EbsError('ResourceNotFoundException', 'x', { status: 404 }), { snapshotId: SNAP, role: 'parent snapshot' });
  assert.equal(p, `parent snapshot ${SNAP} not found (check the id and the region)`);
});

test('not completed gives the status', () => {
  const pending = new EbsError('ValidationException', `snapshot ${SNAP} is not completed (status pending)`, { status: 400, reason: Reason.SNAPSHOT_NOT_COMPLETED });
  assert.equal(describeEbsError(pending, { snapshotId: SNAP }), `snapshot ${SNAP} is not completed yet (status pending)`);
  const error = new EbsError('ValidationException', 'The snapshot is in error state', { status: 400, reason: Reason.SNAPSHOT_NOT_COMPLETED });
  assert.match(describeEbsError(error, { snapshotId: SNAP }), /is in state error/);
});

test('access denied: IAM actions per operation, KMS wording for the key', () => {
  const denied = new EbsError('AccessDeniedException', 'User is not authorized', { status: 403, reason: 'UNAUTHORIZED_ACCOUNT' });
  assert.equal(
    describeEbsError(denied, { snapshotId: SNAP }),
    `access denied to snapshot ${SNAP} (check IAM permissions for ebs:ListSnapshotBlocks/GetSnapshotBlock, and the KMS key policy if the snapshot is encrypted)`,
  );
  assert.match(describeEbsError(denied, { snapshotId: SNAP, op: 'write' }), /ebs:StartSnapshot\/PutSnapshotBlock\/CompleteSnapshot/);
  const kms = new EbsError('AccessDeniedException', 'Access to the KMS key was denied', { status: 403, reason: 'DEPENDENCY_ACCESS_DENIED' });
  assert.match(describeEbsError(kms, { snapshotId: SNAP }), /^access denied to the KMS key of snapshot snap-0123456789abcdef0 \(check the key policy: kms:Decrypt/);
  assert.match(describeEbsError(denied, { op: 'write' }), /^access denied \(check IAM permissions for ebs:StartSnapshot/);
  const unknownKey = new EbsError('AccessDeniedException', 'The security token included in the request is invalid (unknown access key id).', { status: 403, reason: 'UNAUTHORIZED_ACCOUNT' });
  assert.match(describeEbsError(unknownKey), /^access denied by the EBS endpoint: The security token .* \(check the access key and secret\)$/);
  const sig = new EbsError('AccessDeniedException', 'The request signature we calculated does not match', { status: 403 });
  assert.match(describeEbsError(sig, { endpoint: 'http://127.0.0.1:9' }), /access denied by the EBS endpoint http:\/\/127\.0\.0\.1:9: .*signature.*check the access key/);
});

test('credentials, region, network, timeout', () => {
  assert.equal(
    describeEbsError(new EbsError('CredentialsError', 'Could not load credentials from any providers')),
    'no AWS credentials found (set AWS_PROFILE, --profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)',
  );
  assert.match(describeEbsError(new EbsError('CredentialsError', 'Profile nope could not be found or parsed in shared credentials file.')), /^cannot load AWS credentials: Profile nope/);
  assert.match(describeEbsError(new EbsError('ConfigError', 'Region is missing')), /^no AWS region configured/);
  assert.equal(
    describeEbsError(new EbsError('NetworkError', 'connect ECONNREFUSED 127.0.0.1:1', { reason: 'ECONNREFUSED' }), { endpoint: 'http://127.0.0.1:1' }),
    'cannot reach the EBS endpoint http://127.0.0.1:1 (connection refused)',
  );
  assert.equal(describeEbsError(new EbsError('NetworkError', 'getaddrinfo ENOTFOUND x', { reason: 'ENOTFOUND' })), 'cannot reach the EBS endpoint (host not found)');
  assert.match(describeEbsError(new EbsError('TimeoutError', 't'), { endpoint: 'http://h:1' }), /^the EBS endpoint http:\/\/h:1 did not answer in time/);
});

test('throttling, quota, 5xx, corruption, conflict, unknown', () => {
  assert.match(describeEbsError(new EbsError('RequestThrottledException', 'Rate exceeded', { status: 400 })), /throttled.*lower --concurrency/);
  assert.match(describeEbsError(new EbsError('ServiceQuotaExceededException', 'too many', { status: 402 })), /quota/);
  assert.match(describeEbsError(new EbsError('InternalServerException', 'boom', { status: 500 })), /failed repeatedly \(InternalServerException: boom\)/);
  assert.match(describeEbsError(new EbsError('ChecksumMismatch', 'block 3'), { snapshotId: SNAP }), /SHA-256 check/);
  assert.match(describeEbsError(new EbsError('ConflictException', 'token reused', { status: 409 })), /^conflict: token reused/);
  assert.equal(describeEbsError(new EbsError('Weird', 'odd\nthing')), 'Weird: odd thing');
  assert.equal(describeEbsError(new Error('plain\nerror')), 'plain error');
});

test('every message is one line; toUserError keeps UserErrors and wraps the rest', () => {
  const errs = [
    new EbsError('ResourceNotFoundException', 'a\nb', { status: 404 }),
    new EbsError('ValidationException', 'multi\nline', { status: 400 }),
    new EbsError('AccessDeniedException', 'x\ny', { status: 403 }),
    new EbsError('NetworkError', 'z\nw'),
  ];
  for (const e of errs) oneLine(describeEbsError(e, { snapshotId: SNAP }));
  const u = new UserError('mine', 3);
  assert.equal(toUserError(u), u);
  const w = toUserError(new EbsError('ResourceNotFoundException', 'm', { status: 404 }), { snapshotId: SNAP });
  assert.ok(w instanceof UserError);
  assert.equal(w.exitCode, 1);
  assert.match(w.message, /not found/);
});
