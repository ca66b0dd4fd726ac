/**
 * E2E, table-driven: a user who mistypes. Every command except `serve` (tested with the server)
 * run through the real CLI with a bad value for each of its options and arguments — garbage and
 * negative numbers, sizes, ids, missing files, a directory where a file is expected, a file where
 * a directory is — against a real `ebsmount serve`. Each must answer with exactly one line
 * `ebsmount: ...` on stderr naming the problem, nothing on stdout, exit 2 (usage) or 1, never a
 * stack trace, never exit 70, and leave nothing mounted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../../helpers/cli.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { cleanup, cleanupAll, isMounted, sh, tempDir } from '../../helpers/mounts.js';
import { seededBytes } from '../../helpers/images.js';

interface Case {
  args: (p: Paths) => string[];
  code: 1 | 2;
  message: RegExp;
}

interface Paths {
  snap: string;
  mnt: string;
  dir: string;
  file: string;
  missing: string;
  empty: string;
  image: string;
  out: string;
}

const m = (p: Paths, ...rest: string[]) => [p.snap, p.mnt, ...rest];

const CASES: Record<string, Case[]> = {
  'no command / unknown command': [
    { args: () => [], code: 2, message: /give a command, or a snapshot id and a mountpoint/ },
    { args: () => ['frobnicate'], code: 2, message: /'frobnicate' is not a command \(mount, unmount/ },
    { args: (p) => m(p, '--no-such-option'), code: 2, message: /Unknown argument/ },
  ],
  mount: [
    { args: (p) => ['snap-xyz', p.mnt], code: 2, message: /'snap-xyz' is not a valid snapshot id/ },
    { args: (p) => [p.snap], code: 2, message: /Not enough non-option arguments/ },
    { args: (p) => [p.snap, p.missing], code: 1, message: /mountpoint .* does not exist/ },
    { args: (p) => [p.snap, p.file], code: 1, message: /is not a directory/ },
    { args: (p) => m(p, '--cache-size', '0'), code: 2, message: /--cache-size must be at least 512K/ },
    { args: (p) => m(p, '--cache-size', '100T'), code: 2, message: /--cache-size 100T is more than the memory this machine allows \(\d+\.\d GiB\)/ },
    { args: (p) => m(p, '--cache-size', '-5'), code: 2, message: /--cache-size '-5' is not a size/ },
    { args: (p) => m(p, '--cache-size', '12Q'), code: 2, message: /--cache-size '12Q' is not a size/ },
    { args: (p) => m(p, '--cache-size', '1G', '--cache-size', '2G'), code: 2, message: /--cache-size was given 2 times \('1G', '2G'\)/ },
    { args: (p) => m(p, '--read-ahead', 'abc'), code: 2, message: /--read-ahead 'abc' is not a size/ },
    { args: (p) => m(p, '--max-concurrency', 'abc'), code: 2, message: /--max-concurrency must be a number, not 'abc'/ },
    { args: (p) => m(p, '--max-concurrency=-3'), code: 2, message: /--max-concurrency must be an integer from 1 to 1024, not '-3'/ },
    { args: (p) => m(p, '--max-concurrency', '100000'), code: 2, message: /--max-concurrency must be an integer from 1 to 1024/ },
    { args: (p) => m(p, '--request-rate', '0.5'), code: 2, message: /--request-rate must be a positive integer, not '0.5'/ },
    { args: (p) => m(p, '--upload-concurrency', '0'), code: 2, message: /--upload-concurrency must be an integer from 1 to 1024/ },
    { args: (p) => m(p, '--log-file', p.dir), code: 1, message: /--log-file: log file .* is a directory/ },
    { args: (p) => m(p, '--log-file', join(p.file, 'x.log')), code: 1, message: /--log-file: cannot create the log directory .* is not a directory/ },
    { args: (p) => m(p, '--log-level', 'loud'), code: 2, message: /Invalid values: Argument: log-level, Given: "loud"/ },
    { args: (p) => m(p, '--region', 'us east'), code: 2, message: /--region 'us east' is not a region name/ },
    { args: (p) => m(p, '--endpoint', 'notaurl'), code: 2, message: /invalid endpoint URL "notaurl"/ },
    { args: (p) => m(p, '--tag', 'novalue', '-w'), code: 2, message: /--tag 'novalue' must be key=value/ },
    { args: (p) => m(p, '--description', 'x'), code: 2, message: /apply only to --writable mounts/ },
    { args: (p) => m(p, '-w', '--journal-dir', p.file), code: 1, message: /cannot create the journal/ },
  ],
  unmount: [
    { args: () => ['unmount'], code: 2, message: /Not enough non-option arguments/ },
    { args: (p) => ['unmount', p.missing], code: 1, message: /is not mounted/ },
    { args: (p) => ['unmount', p.file], code: 1, message: /is not mounted/ },
  ],
  status: [
    { args: (p) => ['status', p.dir], code: 1, message: /no ebsmount mount at/ },
    { args: (p) => ['status', p.dir, p.file], code: 2, message: /Unknown argument/ },
  ],
  import: [
    { args: () => ['import'], code: 2, message: /Not enough non-option arguments/ },
    { args: (p) => ['import', p.missing], code: 1, message: /image .* does not exist/ },
    { args: (p) => ['import', p.dir], code: 1, message: /image .* is a directory/ },
    { args: (p) => ['import', p.empty], code: 1, message: /image .* is empty/ },
    { args: (p) => ['import', p.image, '--concurrency', 'abc'], code: 2, message: /--concurrency must be a number, not 'abc'/ },
    { args: (p) => ['import', p.image, '--concurrency', '0'], code: 2, message: /--concurrency must be an integer from 1 to 1024/ },
    { args: (p) => ['import', p.image, '--concurrency', '99999'], code: 2, message: /--concurrency must be an integer from 1 to 1024/ },
    { args: (p) => ['import', p.image, '--parent', 'snap-xyz'], code: 2, message: /'snap-xyz' is not a snapshot id/ },
    { args: (p) => ['import', p.image, '--parent', 'snap-0123456789abcdef0'], code: 1, message: /parent snapshot snap-0123456789abcdef0 not found/ },
    { args: (p) => ['import', p.image, '--timeout-minutes', '5'], code: 2, message: /--timeout-minutes must be an integer from 10 to 4320/ },
    { args: (p) => ['import', p.image, '--timeout-minutes', 'soon'], code: 2, message: /--timeout-minutes must be a number, not 'soon'/ },
    { args: (p) => ['import', p.image, '--tag', 'novalue'], code: 2, message: /--tag 'novalue' must be key=value/ },
    { args: (p) => ['import', p.image, '--log-level', 'x'], code: 2, message: /Invalid values/ },
  ],
  export: [
    { args: (p) => ['export', p.snap], code: 2, message: /Not enough non-option arguments/ },
    { args: (p) => ['export', 'snap-xyz', p.out], code: 2, message: /'snap-xyz' is not a snapshot id/ },
    { args: (p) => ['export', 'snap-0123456789abcdef0', p.out], code: 1, message: /snapshot snap-0123456789abcdef0 not found/ },
    { args: (p) => ['export', p.snap, p.dir], code: 1, message: /is a directory \(give a file name or a block device\)/ },
    { args: (p) => ['export', p.snap, join(p.missing, 'out.img')], code: 1, message: /directory .* does not exist/ },
    { args: (p) => ['export', p.snap, p.file], code: 1, message: /already exists \(use --force to overwrite it\)/ },
    { args: (p) => ['export', p.snap, join(p.file, 'x.img')], code: 1, message: /not a directory/ },
    { args: (p) => ['export', p.snap, '/dev/null'], code: 1, message: /is not a regular file or a block device/ },
    { args: (p) => ['export', p.snap, p.out, '--concurrency', '-1'], code: 2, message: /--concurrency must be an integer from 1 to 1024, not '-1'/ },
    { args: (p) => ['export', p.snap, p.out, '--concurrency', 'x8'], code: 2, message: /--concurrency must be a number, not 'x8'/ },
  ],
  commit: [
    { args: () => ['commit'], code: 2, message: /--journal DIR is required/ },
    { args: (p) => ['commit', '--journal', p.file], code: 2, message: /is not an ebsmount journal/ },
    { args: (p) => ['commit', '--journal', p.missing], code: 2, message: /is not an ebsmount journal/ },
    { args: (p) => ['commit', '--journal', p.dir, '--upload-concurrency', 'abc'], code: 2, message: /--upload-concurrency must be a number, not 'abc'/ },
  ],
  journals: [
    { args: (p) => ['journals', '--root', p.file], code: 2, message: /journals: .* is not a directory/ },
    { args: (p) => ['journals', '--root', p.dir, '--root', p.file], code: 2, message: /--root was given 2 times/ },
  ],
  inspect: [
    { args: () => ['inspect'], code: 2, message: /Not enough non-option arguments/ },
    { args: () => ['inspect', 'snap-xyz'], code: 2, message: /'snap-xyz' is not a snapshot id/ },
    { args: () => ['inspect', 'snap-0123456789abcdef0'], code: 1, message: /snapshot snap-0123456789abcdef0 not found/ },
  ],
  diff: [
    { args: (p) => ['diff', p.snap], code: 2, message: /Not enough non-option arguments/ },
    { args: (p) => ['diff', 'snap-xyz', p.snap], code: 2, message: /'snap-xyz' is not a snapshot id/ },
  ],
};

describe('bad input: one line, exit 1 or 2, no stack trace', { timeout: 600_000 }, () => {
  let server: TestServer;
  let work: string;
  const paths = {} as Paths;
  let n = 0;

  before(async () => {
    server = await startServer();
    cleanup.add('server', () => server.stop());
    work = await tempDir('ebsmount-bad-input-');
    Object.assign(paths, {
      dir: join(work, 'a-dir'),
      file: join(work, 'a-file'),
      missing: join(work, 'missing'),
      empty: join(work, 'empty.img'),
      image: join(work, 'small.img'),
      out: join(work, 'out.img'),
    });
    await mkdir(paths.dir);
    await writeFile(paths.file, 'x');
    await writeFile(paths.empty, '');
    await writeFile(paths.image, seededBytes(1, 'bad-input', 1024 * 1024));
    const r = await runCli(['import', paths.image, '--endpoint', server.endpoint]);
    assert.equal(r.code, 0, r.stderr);
    paths.snap = r.stdout.trim();
  });
  after(() => cleanupAll());

  for (const [command, cases] of Object.entries(CASES)) {
    test(command, async () => {
      for (const c of cases) {
        const mnt = join(work, `mnt${n++}`);
        await mkdir(mnt);
        const args = c.args({ ...paths, mnt });
        const r = await runCli(args, {
          env: { AWS_ENDPOINT_URL_EBS: server.endpoint, XDG_STATE_HOME: join(work, 'state'), EBSMOUNT_RUN_DIR: join(work, 'run') },
          timeoutMs: 120_000,
        });
        const what = `ebsmount ${args.join(' ')} → exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
        if (await isMounted(mnt)) {
          await sh('umount', ['-l', mnt]);
          assert.fail(`mounted: ${what}`);
        }
        assert.notEqual(r.code, 70, `internal error: ${what}`);
        assert.doesNotMatch(r.stderr, /\n\s+at /, `a stack trace: ${what}`);
        assert.match(r.stderr, /^ebsmount: [^\n]+\n$/, `one line: ${what}`);
        assert.match(r.stderr, c.message, what);
        assert.equal(r.code, c.code, what);
        assert.equal(r.stdout, '', `stdout: ${what}`);
      }
    });
  }
});
