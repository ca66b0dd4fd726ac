/**
 * connect: the EbsApi a command talks to, from the shared AWS connection settings (endpoint,
 * region, profile) as the CLI parsed them. Lives below the CLI so `mount/`, `transfer/` and
 * `writeback/` can build the API without importing `cli/`.
 *
 * Contract: `apiFromSettings` returns one SdkEbsApi (see client-options.ts for how endpoint,
 * region and credentials are resolved); a malformed endpoint URL is a UserError (exit 2).
 * Sockets: `concurrency` (when the command has it, default 64) + 8.
 */
import type { EbsApi } from './api.js';
import { createEbsApi, resolveEndpoint, validateEndpoint } from './client-options.js';
import type { Logger } from '../util/log.js';
import { UserError } from '../errors/user-error.js';

export interface AwsArgs {
  endpoint?: string;
  region?: string;
  profile?: string;
}

/** The endpoint the command will use, for messages (undefined: AWS). */
export function endpointFromArgv(argv: AwsArgs): string | undefined {
  return resolveEndpoint({ endpoint: argv.endpoint });
}

export function apiFromArgv(argv: AwsArgs & { concurrency?: number }, logger?: Logger): EbsApi {
  const endpoint = endpointFromArgv(argv);
  if (endpoint) {
    try {
      validateEndpoint(endpoint);
    } catch (err) {
      throw new UserError((err as Error).message, 2);
    }
  }
  return createEbsApi({
    endpoint: argv.endpoint,
    region: argv.region,
    profile: argv.profile,
    maxSockets: (argv.concurrency ?? 64) + 8,
    logger,
  });
}
