/**
 * The logger never writes a secret, whatever shape it arrives in (nested fields, error causes,
 * SDK error responses, child bindings, the message text), keeps what is useful (messages,
 * snapshot ids, block indexes, counters), and creates its files 0600 in 0700 directories.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { mkdir, mkdtemp, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EBSServiceException } from '@aws-sdk/client-ebs';
import { createLogger, LogFileError, openLogFile } from '../../../src/util/log.js';
import { redactText, redactValue } from '../../../src/util/redact.js';
import { closeSync } from 'node:fs';

const SECRETS = {
  blockToken: 'BLOCKTOKEN-AAAA1111',
  pageToken: 'PAGETOKEN-BBBB2222',
  secret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET0001',
  session: 'IQoJb3JpZ2luX2VjSESSIONTOKEN0002',
  akid: 'AKIAIOSFODNN7EXAMPL2',
  signature: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
};

function sinkLogger(level = 'trace') {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: createLogger({ level, destination }), text: () => lines.join('') };
}

function assertNoSecret(text: string): void {
  for (const [name, value] of Object.entries(SECRETS)) assert.ok(!text.includes(value), `${name} leaked: ${text}`);
}

describe('log redaction', () => {
  test('nested fields, error causes, SDK responses, bindings and the message: no secret, the rest kept', async () => {
    const { logger, text } = sinkLogger();
    const url = `http://127.0.0.1:9/snapshots/snap-0123456789abcdef0/blocks/7?blockToken=${SECRETS.blockToken}`;
    const root = new Error(`request to ${url} failed`);
    const sdkError = new EBSServiceException({ name: 'ValidationException', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'bad token' });
    (sdkError as unknown as Record<string, unknown>).$response = {
      statusCode: 400,
      headers: {
        authorization: `AWS4-HMAC-SHA256 Credential=${SECRETS.akid}/20261127/us-east-1/ebs/aws4_request, SignedHeaders=host, Signature=${SECRETS.signature}`,
        'x-amz-security-token': SECRETS.session,
      },
    };
    const wrapped = new Error('GetSnapshotBlock failed for block 7', { cause: new AggregateError([root, sdkError], 'all attempts failed') });
    (wrapped as unknown as Record<string, unknown>).request = { query: { blockToken: SECRETS.blockToken }, nextToken: SECRETS.pageToken };

    const child = logger.child({ credentials: { accessKeyId: SECRETS.akid, secretAccessKey: SECRETS.secret } });
    child.error({ err: wrapped, snapshotId: 'snap-0123456789abcdef0', block: 7, deep: { a: { b: { c: { d: { pageToken: SECRETS.pageToken } } } } } }, 'read failed');
    child.warn({ list: [{ blockIndex: 3, blockToken: SECRETS.blockToken }], tokenRefreshes: 2 }, 'listing');
    child.info(`signed url ${url}&X-Amz-Signature=${SECRETS.signature}&X-Amz-Credential=${SECRETS.akid}%2F20261127`);
    child.warn(new Error(`Authorization: Bearer ${SECRETS.session}`));
    child.info({ settings: new Map([['secretAccessKey', SECRETS.secret]]) }, 'settings');
    logger.flush();
    const out = text();
    assertNoSecret(out);
    // What a reader of the log needs is still there.
    assert.match(out, /GetSnapshotBlock failed for block 7/);
    assert.match(out, /all attempts failed/);
    assert.match(out, /bad token/);
    assert.match(out, /"snapshotId":"snap-0123456789abcdef0"/);
    assert.match(out, /"block":7/);
    assert.match(out, /"blockIndex":3/);
    assert.match(out, /"tokenRefreshes":2/);
    assert.match(out, /blockToken=\[redacted\]/);
    assert.match(out, /"httpStatusCode":400/);
    for (const line of out.trim().split('\n')) JSON.parse(line); // every line still JSON
  });

  test('redactValue copies (never changes the logged object) and survives cycles and depth', () => {
    const obj: Record<string, unknown> = { token: 'x', keep: 'y' };
    obj.self = obj;
    let deep: Record<string, unknown> = { blockToken: SECRETS.blockToken };
    for (let i = 0; i < 50; i++) deep = { next: deep };
    const out = redactValue({ obj, deep }) as Record<string, Record<string, unknown>>;
    assert.equal(obj.token, 'x', 'input unchanged');
    assert.equal(out.obj!.token, '[redacted]');
    assert.equal(out.obj!.keep, 'y');
    assert.equal(out.obj!.self, '[circular]');
    assertNoSecret(JSON.stringify(out));
  });

  test('redactText: values inside free text', () => {
    assert.equal(redactText('a?blockToken=abc%2Fdef&x=1'), 'a?blockToken=[redacted]&x=1');
    assert.equal(redactText(`key ${SECRETS.akid} used`), 'key [redacted] used');
    assert.equal(redactText('"authorization":"AWS4-HMAC-SHA256 x"'), '"authorization":"[redacted]"');
    assert.equal(redactText('block 7 of snap-0123456789abcdef0: EIO'), 'block 7 of snap-0123456789abcdef0: EIO');
  });
});

describe('log files', () => {
  test('created 0600 in directories created 0700; a wider existing file is narrowed; a directory is refused', async () => {
    const base = await mkdtemp(join(tmpdir(), 'ebsmount-log-'));
    try {
      const file = join(base, 'state', 'logs', 'x.log');
      const prev = process.umask(0o022);
      try {
        closeSync(openLogFile(file));
      } finally {
        process.umask(prev);
      }
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal((await stat(join(base, 'state', 'logs'))).mode & 0o777, 0o700);
      assert.equal((await stat(join(base, 'state'))).mode & 0o777, 0o700);

      const wide = join(base, 'wide.log');
      await writeFile(wide, 'old line\n');
      await chmod(wide, 0o644);
      closeSync(openLogFile(wide));
      assert.equal((await stat(wide)).mode & 0o777, 0o600);

      const olddir = join(base, 'old-logs');
      await mkdir(olddir, { mode: 0o755 });
      await chmod(olddir, 0o755);
      closeSync(openLogFile(join(olddir, 'a.log'), { privateDir: true }));
      assert.equal((await stat(olddir)).mode & 0o777, 0o700, 'ebsmount\'s own log directory narrowed');

      await mkdir(join(base, 'adir'));
      assert.throws(() => openLogFile(join(base, 'adir')), (e: unknown) => e instanceof LogFileError && /is a directory/.test(e.message));
      await writeFile(join(base, 'afile'), '');
      assert.throws(() => openLogFile(join(base, 'afile', 'x.log')), (e: unknown) => e instanceof LogFileError && /cannot create the log directory .*afile is not a directory/.test(e.message));
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
