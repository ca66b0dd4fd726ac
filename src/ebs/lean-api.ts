/**
 * LeanEbsApi: the EbsApi contract with GetSnapshotBlock and PutSnapshotBlock on a lean HTTP path
 * (one signed HTTP/1.1 request over a pooled keep-alive agent, lean-http.ts); the four other
 * operations go through the SdkEbsApi it wraps (@aws-sdk/client-ebs).
 *
 * Contract:
 * - Same wire requests as the SDK: method, path, query and signed headers (x-amz-user-agent
 *   included) equal the SDK's for the same call, date and signature aside (test/unit/ebs/
 *   lean-api.test.ts compares them); same endpoint (the client's `endpoint`, else the SDK's
 *   configured-endpoint sources such as AWS_ENDPOINT_URL_EBS, else its endpoint rules for the
 *   region), region, credentials (the client's resolved provider: default chain, profile or
 *   static, refreshed by the SDK) and clock offset. Resolved once, on the first block call; a
 *   failure there (no region, no credentials) is thrown as the SDK path would (ConfigError,
 *   CredentialsError) and the next call tries again.
 * - Same EbsError mapping (lean-http.ts), one request per call (retry.ts retries), same abort
 *   (AbortError) and timeouts (socket idle `requestTimeoutMs`, connect 5 s: TimeoutError).
 * - GetSnapshotBlock: the body lands in a buffer from `pool` (BlockPool) when one is given (the
 *   caller owns it afterwards and gives it back), else in a new one; never verified here.
 *   PutSnapshotBlock sends the caller's buffer as is, with its checksum as the payload hash.
 * - Never logs; tokens, credentials and signatures stay in the requests.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { GetSnapshotBlockCommand } from '@aws-sdk/client-ebs';
import { getEndpointFromInstructions } from '@smithy/core/endpoints';
import type { AwsCredentialIdentity, ChecksumConstructor, HashConstructor } from '@smithy/types';
import type {
  BlockData,
  BlockPage,
  ChangedPage,
  EbsApi,
  ListPageOptions,
  SnapshotStatus,
  StartSnapshotInput,
  StartedSnapshot,
} from './api.js';
import type { BlockPool } from './block-pool.js';
import { EbsError } from './errors.js';
import { leanRequest, type LeanTarget } from './lean-http.js';
import { LeanSigner } from './lean-signer.js';
import { toEbsError, type SdkEbsApi } from './sdk-api.js';

export interface LeanEbsApiOptions {
  /** Sockets per host of the lean path's agent. */
  maxSockets: number;
  /** No socket activity for this long: TimeoutError. */
  requestTimeoutMs: number;
  connectTimeoutMs?: number;
  /** Where GetSnapshotBlock bodies land (default: a new buffer per block). */
  pool?: BlockPool;
}

interface Resolved {
  target: LeanTarget;
  /** The endpoint's path prefix ('' or '/x'), escaped as in the URL. */
  basePath: string;
  host: string;
  signer: LeanSigner;
  userAgent: string;
  sdkUserAgent: string;
}

interface SdkConfig {
  region: () => Promise<string>;
  credentials: () => Promise<AwsCredentialIdentity>;
  sha256: ChecksumConstructor | HashConstructor;
  systemClockOffset?: number;
  defaultUserAgentProvider: () => Promise<[string, string | undefined][]>;
}

/** encodeURIComponent plus !'()* — the SDK's extendedEncodeURIComponent. */
export function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

export class LeanEbsApi implements EbsApi {
  private resolved: Promise<Resolved> | undefined;
  private readonly agents: { http: HttpAgent; https: HttpsAgent };

  constructor(
    readonly sdk: SdkEbsApi,
    private readonly opts: LeanEbsApiOptions,
  ) {
    const agentOpts = { keepAlive: true, maxSockets: opts.maxSockets, maxFreeSockets: opts.maxSockets, scheduling: 'lifo' as const };
    this.agents = { http: new HttpAgent(agentOpts), https: new HttpsAgent(agentOpts) };
  }

  // ---- the SDK path ---------------------------------------------------------------------------

  listSnapshotBlocks(snapshotId: string, opts?: ListPageOptions): Promise<BlockPage> {
    return this.sdk.listSnapshotBlocks(snapshotId, opts);
  }

  listChangedBlocks(first: string | undefined, second: string, opts?: ListPageOptions): Promise<ChangedPage> {
    return this.sdk.listChangedBlocks(first, second, opts);
  }

  startSnapshot(input: StartSnapshotInput): Promise<StartedSnapshot> {
    return this.sdk.startSnapshot(input);
  }

  completeSnapshot(snapshotId: string, count: number, opts?: { linearChecksum?: string; signal?: AbortSignal }): Promise<{ status: SnapshotStatus }> {
    return this.sdk.completeSnapshot(snapshotId, count, opts);
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
    this.sdk.close();
  }

  // ---- the lean path --------------------------------------------------------------------------

  async getSnapshotBlock(snapshotId: string, blockIndex: number, blockToken: string, opts: { signal?: AbortSignal } = {}): Promise<BlockData> {
    const r = await this.resolve();
    const path = `${r.basePath}/snapshots/${escapeUri(snapshotId)}/blocks/${blockIndex}`;
    const headers: Record<string, string> = {
      'x-amz-user-agent': r.sdkUserAgent,
      'user-agent': r.userAgent,
      host: r.host,
    };
    const signed = await this.sign(r, 'GET', path, { blockToken }, headers);
    const into = this.opts.pool?.take();
    try {
      const res = await leanRequest(r.target, {
        method: 'GET',
        pathAndQuery: `${path}?blockToken=${escapeUri(blockToken)}`,
        headers: signed,
        signal: opts.signal,
        timeoutMs: this.opts.requestTimeoutMs,
        connectTimeoutMs: this.opts.connectTimeoutMs ?? 5_000,
        into,
      });
      const h = res.headers;
      const dataLengthHeader = h['x-amz-data-length'];
      const dataLength = dataLengthHeader === undefined ? res.length : Number(dataLengthHeader);
      if (dataLengthHeader !== undefined && res.length !== dataLength) {
        throw new EbsError('NetworkError', `response body has ${res.length} bytes but DataLength says ${dataLength}`, { reason: 'ECONNRESET' });
      }
      return {
        data: res.length === res.body.length ? res.body : res.body.subarray(0, res.length),
        checksum: one(h['x-amz-checksum']) ?? '',
        checksumAlgorithm: one(h['x-amz-checksum-algorithm']) ?? '',
        dataLength,
      };
    } catch (err) {
      if (into) this.opts.pool!.give(into);
      throw toEbsError(err);
    }
  }

  async putSnapshotBlock(
    snapshotId: string,
    blockIndex: number,
    data: Buffer,
    checksumBase64: string,
    opts: { progress?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    const r = await this.resolve();
    const path = `${r.basePath}/snapshots/${escapeUri(snapshotId)}/blocks/${blockIndex}`;
    // The SDK's header order and set (its serializer, content-type/length, then the signer's).
    const headers: Record<string, string> = {
      'x-amz-data-length': String(data.length),
      'x-amz-checksum': checksumBase64,
      'x-amz-checksum-algorithm': 'SHA256',
    };
    if (opts.progress !== undefined) headers['x-amz-progress'] = String(opts.progress);
    headers['content-type'] = 'application/octet-stream';
    headers['content-length'] = String(data.length);
    // The body's SHA-256 as the payload hash: the signer does not hash 512 KiB again.
    headers['x-amz-content-sha256'] = Buffer.from(checksumBase64, 'base64').toString('hex');
    headers['x-amz-user-agent'] = r.sdkUserAgent;
    headers['user-agent'] = r.userAgent;
    headers.host = r.host;
    const signed = await this.sign(r, 'PUT', path, {}, headers);
    try {
      await leanRequest(r.target, {
        method: 'PUT',
        pathAndQuery: path,
        headers: signed,
        body: data,
        signal: opts.signal,
        timeoutMs: this.opts.requestTimeoutMs,
        connectTimeoutMs: this.opts.connectTimeoutMs ?? 5_000,
      });
    } catch (err) {
      throw toEbsError(err);
    }
  }

  private async sign(r: Resolved, method: string, path: string, query: Record<string, string>, headers: Record<string, string>): Promise<Record<string, string>> {
    try {
      return await r.signer.sign({
        method,
        protocol: r.target.protocol,
        hostname: r.target.hostname,
        port: r.target.port,
        path,
        query,
        headers,
      });
    } catch (err) {
      throw toEbsError(err);
    }
  }

  private resolve(): Promise<Resolved> {
    if (!this.resolved) {
      this.resolved = this.doResolve().catch((err: unknown) => {
        this.resolved = undefined;
        throw toEbsError(err);
      });
    }
    return this.resolved;
  }

  private async doResolve(): Promise<Resolved> {
    const config = this.sdk.client.config as unknown as SdkConfig;
    const region = await config.region();
    // The endpoint exactly as the SDK resolves it for a GetSnapshotBlock (no operation-specific
    // parameters in EBS's rules): explicit endpoint, configured endpoint (env, profile), rules.
    const endpoint = await getEndpointFromInstructions(
      {},
      GetSnapshotBlockCommand as unknown as Parameters<typeof getEndpointFromInstructions>[1],
      config as unknown as Parameters<typeof getEndpointFromInstructions>[2],
    );
    const url = endpoint.url;
    const protocol = url.protocol === 'https:' ? 'https:' : 'http:';
    const port = url.port ? Number(url.port) : protocol === 'https:' ? 443 : 80;
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    const ua = await config.defaultUserAgentProvider();
    const first = ua[0] ?? ['aws-sdk-js', undefined];
    const sdkUserAgent = first[1] ? `${first[0]}/${first[1]}` : first[0];
    const signer = new LeanSigner({
      credentials: () => config.credentials(),
      region,
      service: 'ebs',
      sha256: config.sha256,
      clockOffsetMs: () => config.systemClockOffset ?? 0,
    });
    return {
      target: { protocol, hostname, port, agent: protocol === 'https:' ? this.agents.https : this.agents.http },
      basePath: url.pathname.replace(/\/+$/, ''),
      // As the SDK's request carries it (port only when not the default).
      host: url.port ? `${url.hostname}:${url.port}` : url.hostname,
      signer,
      sdkUserAgent,
      userAgent: `${sdkUserAgent} lib/ebsmount-lean`,
    };
  }
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
