/**
 * The soak's EBS server: `ebsmount serve`'s own option parsing (serveOptionsFromArgv: the same
 * flags, --error-rate, --throttle-rate, --corrupt-rate, --latency-ms...) and the same server
 * (startEbsServer), plus a record of every fault it injects, so the soak can say how many it
 * survived even though this process is killed with SIGKILL at random moments.
 *
 * Usage: node fault-server.js --counts FILE [ebsmount serve options]
 * Prints `ebsmount serve: listening on URL` when ready (like `ebsmount serve`). After any request
 * that changed the fault counters, appends one JSON line of the counters since start to FILE
 * (appendFileSync: in the page cache before the next request, so a SIGKILL loses none). The
 * last line of each run is that run's total.
 */
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { serveOptionsFromArgv, type ServeArgv } from '../../src/cli/commands/serve.js';
import { startEbsServer } from '../../src/server/http-server.js';
import { createLogger } from '../../src/util/log.js';

const NUMERIC = ['port', 'latency-ms', 'latency-jitter-ms', 'rate-limit', 'throttle-rate', 'error-rate', 'corrupt-rate', 'missing-after-start-ms'] as const;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      counts: { type: 'string' },
      data: { type: 'string' },
      host: { type: 'string' },
      ...Object.fromEntries(NUMERIC.map((k) => [k, { type: 'string' as const }])),
    },
  });
  if (!values.counts) throw new Error('--counts FILE is required');
  const argv: ServeArgv = { data: values.data, host: values.host };
  for (const k of NUMERIC) {
    const v = (values as Record<string, string | undefined>)[k];
    if (v !== undefined) (argv as Record<string, unknown>)[k] = Number(v);
  }
  const opts = serveOptionsFromArgv(argv);
  const server = await startEbsServer({ ...opts, logger: createLogger({ level: 'warn' }) });
  const faults = server.faults;
  const countsFile = values.counts;
  let last = JSON.stringify(faults.counts);
  const record = () => {
    const now = JSON.stringify(faults.counts);
    if (now !== last) {
      last = now;
      appendFileSync(countsFile, `${now}\n`);
    }
  };
  // Every request passes admit() (throttles, errors; a 'missing' counted by the handler of the
  // previous request shows here too); corrupted bodies pass maybeCorrupt().
  const admit = faults.admit.bind(faults);
  faults.admit = (key: string) => {
    try {
      admit(key);
    } finally {
      record();
    }
  };
  const corrupt = faults.maybeCorrupt.bind(faults);
  faults.maybeCorrupt = (buf: Buffer) => {
    const r = corrupt(buf);
    record();
    return r;
  };
  process.stdout.write(`ebsmount serve: listening on ${server.url} (data ${opts.dataDir})\n`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`fault-server: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
