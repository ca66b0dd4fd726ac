/**
 * The AWS connection options every command that talks to EBS shares: --endpoint (alias
 * --endpoint-url), --region, --profile; and building the EbsApi from them.
 *
 * Contract: `apiFromArgv` returns the one SdkEbsApi of the process (see client-options.ts for
 * how endpoint, region and credentials are resolved); a malformed endpoint URL is a UserError.
 * Sockets: `--concurrency` (when the command has it) + 8.
 */
import type { Argv } from 'yargs';
import type { EbsApi } from '../ebs/api.js';
import { createEbsApi, resolveEndpoint, validateEndpoint } from '../ebs/client-options.js';
import type { Logger } from '../util/log.js';
import { UserError } from './user-error.js';

export interface AwsArgs {
  endpoint?: string;
  region?: string;
  profile?: string;
}

export function withAwsOptions<T>(y: Argv<T>): Argv<T & AwsArgs> {
  return y
    .option('endpoint', {
      type: 'string',
      alias: 'endpoint-url',
      describe: 'EBS direct API endpoint URL (default: env AWS_ENDPOINT_URL_EBS, else AWS)',
    })
    .option('region', { type: 'string', describe: 'AWS region (default: AWS_REGION or the profile\'s region)' })
    .option('profile', { type: 'string', describe: 'profile from ~/.aws/config and ~/.aws/credentials' }) as Argv<T & AwsArgs>;
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
