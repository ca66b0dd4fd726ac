/**
 * The AWS connection options every command that talks to EBS shares: --endpoint (alias
 * --endpoint-url), --region, --profile. Building the EbsApi from them is src/ebs/connect.ts.
 */
import type { Argv } from 'yargs';
import type { AwsArgs } from '../ebs/connect.js';

export { apiFromArgv, endpointFromArgv, type AwsArgs } from '../ebs/connect.js';

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
