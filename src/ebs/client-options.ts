/**
 * createEbsApi: builds the one SdkEbsApi a command uses, from CLI options and the environment.
 *
 * Contract:
 * - Endpoint: the `endpoint` option, else env AWS_ENDPOINT_URL_EBS, else the SDK's default
 *   (ebs.<region>.amazonaws.com).
 * - Region: the `region` option, else AWS_REGION / AWS_DEFAULT_REGION / the profile's region (the
 *   SDK's own resolution, which honours `profile`), else 'us-east-1' when an endpoint is given;
 *   without an endpoint a missing region surfaces as EbsError('ConfigError') on the first call.
 * - Credentials: the SDK's default chain (env, SSO, ini files with `profile`, process, web
 *   identity, container/instance metadata). Dummy static credentials are used only when the
 *   endpoint's host is loopback AND nothing configures credentials (no AWS_ACCESS_KEY_ID,
 *   AWS_PROFILE, --profile, web identity or container variables, no shared credentials file):
 *   a local `ebsmount serve` without --access-key-id accepts any signature.
 * - Transport: NodeHttpHandler with keep-alive agents of `maxSockets` (default 72), a 5 s
 *   connect timeout and a 30 s request/socket timeout that throws TimeoutError; SDK retries off.
 * - Client: a LeanEbsApi (GetSnapshotBlock and PutSnapshotBlock on the lean HTTP path, with its
 *   own keep-alive agents of `maxSockets`, the same timeouts, endpoint, region and credentials;
 *   the other operations through the SDK) unless `client: 'sdk'` or env EBSMOUNT_EBS_CLIENT=sdk
 *   ask for the SDK alone (for side-by-side measurements).
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { EBSClient, type EBSClientConfig } from '@aws-sdk/client-ebs';
import type { EbsApi } from './api.js';
import { SdkEbsApi } from './sdk-api.js';
import { LeanEbsApi } from './lean-api.js';
import { defaultBlockPool, type BlockPool } from './block-pool.js';
import type { Logger } from '../util/log.js';

export interface EbsApiOptions {
  endpoint?: string;
  region?: string;
  profile?: string;
  /** Sockets per host; size it about concurrency + 8. */
  maxSockets?: number;
  /** Per-request timeout (ms); default 30 s. */
  requestTimeoutMs?: number;
  logger?: Logger;
  /** Environment to read (tests); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** 'lean' (default) or 'sdk': how GetSnapshotBlock and PutSnapshotBlock are sent. */
  client?: 'lean' | 'sdk';
  /** Where the lean path's GetSnapshotBlock bodies land (default: the process's BlockPool). */
  pool?: BlockPool;
}

export const DEFAULT_MAX_SOCKETS = 72;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DUMMY_CREDENTIALS = { accessKeyId: 'AKIDEBSMOUNTLOCAL', secretAccessKey: 'ebsmount-local-dummy-secret' };

/** The endpoint actually used: option, else AWS_ENDPOINT_URL_EBS, else undefined (AWS). */
export function resolveEndpoint(opts: { endpoint?: string; env?: NodeJS.ProcessEnv }): string | undefined {
  const env = opts.env ?? process.env;
  const e = opts.endpoint || env.AWS_ENDPOINT_URL_EBS || undefined;
  return e ? e.replace(/\/+$/, '') : undefined;
}

export function isLoopbackEndpoint(endpoint: string): boolean {
  let host: string;
  try {
    host = new URL(endpoint).hostname;
  } catch {
    return false;
  }
  host = host.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host) || host.endsWith('.localhost');
}

/** True when something in the environment tells the SDK's chain where credentials are. */
export function credentialsConfigured(opts: { profile?: string; env?: NodeJS.ProcessEnv }): boolean {
  const env = opts.env ?? process.env;
  if (opts.profile) return true;
  const vars = [
    'AWS_ACCESS_KEY_ID', 'AWS_PROFILE', 'AWS_WEB_IDENTITY_TOKEN_FILE',
    'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  ];
  if (vars.some((v) => env[v])) return true;
  const credFile = env.AWS_SHARED_CREDENTIALS_FILE || join(env.HOME || homedir(), '.aws', 'credentials');
  return existsSync(credFile);
}

export function validateEndpoint(endpoint: string): void {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new Error(`invalid endpoint URL ${JSON.stringify(endpoint)} (expected e.g. http://127.0.0.1:8080)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new Error(`invalid endpoint URL ${JSON.stringify(endpoint)}: the scheme must be http or https`);
  }
}

/** Builds the EBSClient configuration (exported for tests). */
export function ebsClientConfig(opts: EbsApiOptions = {}): EBSClientConfig {
  const env = opts.env ?? process.env;
  const endpoint = resolveEndpoint(opts);
  if (endpoint) validateEndpoint(endpoint);
  const maxSockets = opts.maxSockets ?? DEFAULT_MAX_SOCKETS;
  const timeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const agentOpts = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets };
  const config: EBSClientConfig = {
    maxAttempts: 1,
    // Options object: the client builds its NodeHttpHandler from it (NodeHttpHandler.create).
    requestHandler: {
      httpAgent: new HttpAgent(agentOpts),
      httpsAgent: new HttpsAgent(agentOpts),
      connectionTimeout: 5_000,
      requestTimeout: timeout,
      socketTimeout: timeout,
      throwOnRequestTimeout: true,
    },
  };
  if (endpoint) config.endpoint = endpoint;
  if (opts.profile) config.profile = opts.profile;
  const explicitRegion = opts.region || env.AWS_REGION || env.AWS_DEFAULT_REGION;
  if (explicitRegion) {
    config.region = explicitRegion;
  } else if (endpoint) {
    // Let the SDK look in the profile first; fall back to us-east-1 for a custom endpoint.
    const probe = new EBSClient({ profile: opts.profile, maxAttempts: 1 });
    const sdkRegion = probe.config.region;
    let resolved: Promise<string> | undefined;
    config.region = () => (resolved ??= sdkRegion()
      .catch(() => 'us-east-1')
      .finally(() => probe.destroy()));
  }
  if (endpoint && isLoopbackEndpoint(endpoint) && !credentialsConfigured({ profile: opts.profile, env })) {
    config.credentials = DUMMY_CREDENTIALS;
  }
  return config;
}

export function createEbsApi(opts: EbsApiOptions = {}): EbsApi {
  // The project targets Node 20 (package.json engines); the SDK's "upgrade to Node 22" notice on
  // stderr would only confuse CLI users. Respect an explicit setting.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const config = ebsClientConfig(opts);
  opts.logger?.debug({ endpoint: resolveEndpoint(opts) ?? 'aws', region: opts.region, profile: opts.profile }, 'ebs client');
  const sdk = new SdkEbsApi(config);
  const client = opts.client ?? ((opts.env ?? process.env).EBSMOUNT_EBS_CLIENT === 'sdk' ? 'sdk' : 'lean');
  if (client === 'sdk') return sdk;
  return new LeanEbsApi(sdk, {
    maxSockets: opts.maxSockets ?? DEFAULT_MAX_SOCKETS,
    requestTimeoutMs: opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    pool: opts.pool ?? defaultBlockPool(),
  });
}
