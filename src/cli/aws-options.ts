/**
 * The AWS connection options every command that talks to EBS shares: --endpoint (alias
 * --endpoint-url), --region (checked: a host name label), --profile. Building the EbsApi from
 * them is src/ebs/connect.ts.
 */
import type { Argv } from 'yargs';
import type { AwsArgs } from '../ebs/connect.js';
import { UserError } from '../errors/user-error.js';

export { apiFromArgv, endpointFromArgv, type AwsArgs } from '../ebs/connect.js';

export function withAwsOptions<T>(y: Argv<T>): Argv<T & AwsArgs> {
  return y
    .option('endpoint', {
      type: 'string',
      alias: 'endpoint-url',
      describe: 'EBS direct API endpoint URL (default: env AWS_ENDPOINT_URL_EBS, else AWS)',
    })
    .option('region', { type: 'string', coerce: checkRegion, describe: 'AWS region (default: AWS_REGION or the profile\'s region)' })
    .option('profile', { type: 'string', describe: 'profile from ~/.aws/config and ~/.aws/credentials' }) as Argv<T & AwsArgs>;
}

/** A region is a host name label (us-east-1): anything else is a typo, said in one line. */
export function checkRegion(region: unknown): string | undefined {
  if (region === undefined) return undefined;
  const r = String(region);
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(r)) {
    throw new UserError(`--region '${r}' is not a region name (e.g. us-east-1)`, 2);
  }
  return r;
}
