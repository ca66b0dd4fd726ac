/**
 * SdkEbsApi: the EbsApi contract over @aws-sdk/client-ebs — one EBSClient, one request per call.
 *
 * Contract:
 * - The SDK's own retries are off (maxAttempts 1, and then its retry middleware is replaced by a
 *   pass-through in the client this class builds): retry.ts decides what to retry and when.
 * - Hot path (GetSnapshotBlock): the SDK's middleware chain is resolved once per command class
 *   and abort signal (cached; what `cacheMiddleware` does, but also for calls carrying a signal —
 *   SnapshotStore passes one long-lived signal per volume), not per request.
 * - Every failure leaves as an EbsError: service exceptions keep their name as `type`, with
 *   `status` ($metadata.httpStatusCode) and `reason` (the body's Reason); connection failures
 *   (refused, reset, hang up, DNS) are 'NetworkError' with the system code (ECONNREFUSED...) as
 *   `reason`, socket/request timeouts 'TimeoutError',
 *   a missing or unusable credential 'CredentialsError', a missing region 'ConfigError', an
 *   aborted call 'AbortError'.
 * - GetSnapshotBlock reads the body stream into one Buffer of exactly DataLength bytes (allocated
 *   once, chunks copied in place from 'data' events, no async iterator); a body shorter or longer
 *   than DataLength, or one that ends early, is a 'NetworkError'.
 *   The data is not verified here: the checksum is returned for the caller to check.
 * - PutSnapshotBlock sends the Buffer with Checksum/SHA256/DataLength, and the same SHA-256 (hex) as
 *   the SigV4 payload hash (x-amz-content-sha256), so the signer does not hash 512 KiB again; the
 *   caller's checksum must therefore be the data's (the service rejects it otherwise anyway).
 *   CompleteSnapshot sends the
 *   LINEAR aggregate when one is given. A ClientToken is passed through whenever given.
 * - Never logs: tokens and credentials stay out of every message this file builds.
 */
import type { Readable } from 'node:stream';
import {
  EBSClient,
  CompleteSnapshotCommand,
  GetSnapshotBlockCommand,
  ListChangedBlocksCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
  type EBSClientConfig,
  type GetSnapshotBlockCommandOutput,
} from '@aws-sdk/client-ebs';
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
import { BLOCK_SIZE } from './constants.js';
import { EbsError } from './errors.js';

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED',
  'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/** Turns anything the SDK or the transport throws into an EbsError (idempotent). */
export function toEbsError(err: unknown): EbsError {
  if (err instanceof EbsError) return err;
  if (!(err instanceof Error)) return new EbsError('UnknownError', String(err));
  const e = err as Error & {
    code?: string;
    errno?: string | number;
    Reason?: string;
    Message?: string;
    $metadata?: { httpStatusCode?: number };
    $fault?: string;
    cause?: unknown;
  };
  const status = e.$metadata?.httpStatusCode;
  const message = e.message || e.Message || e.name;
  if (e.name === 'AbortError') return new EbsError('AbortError', 'request aborted', { cause: err });
  if (e.name === 'CredentialsProviderError' || /credential/i.test(e.name)) {
    return new EbsError('CredentialsError', message, { cause: err });
  }
  if (/^Region is missing/.test(message)) return new EbsError('ConfigError', message, { cause: err });
  // Network codes first: node-http-handler renames ECONNRESET/EPIPE errors to 'TimeoutError'.
  const code = typeof e.code === 'string' ? e.code : undefined;
  const causeCode = (e.cause as { code?: string } | undefined)?.code;
  if ((code && NETWORK_CODES.has(code)) || (causeCode && NETWORK_CODES.has(causeCode)) || /socket hang up/i.test(message)) {
    const c = code ?? causeCode ?? 'ECONNRESET';
    if (c === 'ETIMEDOUT') return new EbsError('TimeoutError', message, { reason: c, cause: err });
    // The system error code (ECONNREFUSED, ENOTFOUND...) goes in `reason` for describe-error.
    return new EbsError('NetworkError', message, { reason: c, cause: err });
  }
  if (e.name === 'TimeoutError' || e.code === 'TimeoutError') {
    return new EbsError('TimeoutError', message, { status, reason: 'ETIMEDOUT', cause: err });
  }
  if (status !== undefined || e.$fault) {
    // A service exception (or an unparseable error response) with its HTTP status.
    const type = e.name && e.name !== 'Error' ? e.name : status && status >= 500 ? 'InternalServerException' : 'UnknownError';
    return new EbsError(type, e.Message ?? message, { status, reason: e.Reason, cause: err });
  }
  return new EbsError('UnknownError', message, { cause: err });
}

function asStatus(s: string | undefined): SnapshotStatus {
  return s === 'completed' || s === 'error' ? s : 'pending';
}

/** A resolved middleware chain: what Client.send builds for every call unless cached. */
type ResolvedHandler = (command: unknown) => Promise<{ output: unknown }>;
interface CommandLike {
  constructor: object;
  resolveMiddleware(stack: unknown, config: unknown, options: unknown): ResolvedHandler;
}

export class SdkEbsApi implements EbsApi {
  readonly client: EBSClient;
  /** Resolved chains per command class, for calls without options. */
  private readonly plain = new Map<object, ResolvedHandler>();
  /** Resolved chains per abort signal and command class (weak: a dropped signal frees its chains). */
  private readonly bySignal = new WeakMap<AbortSignal, Map<object, ResolvedHandler>>();

  constructor(clientOrConfig: EBSClient | EBSClientConfig) {
    if (clientOrConfig instanceof EBSClient) {
      this.client = clientOrConfig;
    } else {
      const config = { maxAttempts: 1, ...clientOrConfig };
      this.client = new EBSClient(config);
      // With one attempt the SDK's retry middleware only costs time (a retry token, an abort
      // listener and an invocation id per request): retry.ts does the retrying.
      // Replaced by a pass-through under the same name (the signer is positioned relative to it).
      if (config.maxAttempts === 1) {
        this.client.middlewareStack.add((next) => next, {
          name: 'retryMiddleware',
          tags: ['RETRY'],
          step: 'finalizeRequest',
          priority: 'high',
          override: true,
        });
      }
    }
    (this.client.middlewareStack as unknown as { add(mw: unknown, o: object): void }).add(reusePayloadChecksum, {
      step: 'build',
      name: 'ebsmountPayloadChecksum',
      override: true,
    });
  }

  /**
   * client.send(command, {abortSignal}) with the middleware chain cached per (command class,
   * signal): Client.send would resolve (clone, sort, wrap) the whole stack for every request. A
   * chain is bound to its options, hence one per signal. Same semantics as client.send.
   */
  private sendCached<T>(command: object, signal: AbortSignal | undefined): Promise<T> {
    const cmd = command as CommandLike;
    let map = this.plain;
    if (signal) {
      let m = this.bySignal.get(signal);
      if (!m) this.bySignal.set(signal, (m = new Map()));
      map = m;
    }
    let handler = map.get(cmd.constructor);
    if (!handler) {
      const c = this.client as unknown as { middlewareStack: unknown; config: unknown };
      handler = cmd.resolveMiddleware(c.middlewareStack, c.config, signal ? { abortSignal: signal } : undefined);
      map.set(cmd.constructor, handler);
    }
    return handler(command).then((r) => r.output as T);
  }

  private async send<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toEbsError(err);
    }
  }

  async listSnapshotBlocks(snapshotId: string, opts: ListPageOptions = {}): Promise<BlockPage> {
    const out = await this.send(() => this.client.send(new ListSnapshotBlocksCommand({
      SnapshotId: snapshotId,
      MaxResults: opts.maxResults,
      NextToken: opts.nextToken,
      StartingBlockIndex: opts.startingBlockIndex,
    }), { abortSignal: opts.signal }));
    return {
      blocks: (out.Blocks ?? []).map((b) => ({ index: b.BlockIndex!, token: b.BlockToken! })),
      nextToken: out.NextToken ?? undefined,
      expiryTime: out.ExpiryTime,
      volumeSizeGiB: out.VolumeSize ?? 0,
      blockSize: out.BlockSize ?? BLOCK_SIZE,
    };
  }

  async listChangedBlocks(
    firstSnapshotId: string | undefined,
    secondSnapshotId: string,
    opts: ListPageOptions = {},
  ): Promise<ChangedPage> {
    const out = await this.send(() => this.client.send(new ListChangedBlocksCommand({
      FirstSnapshotId: firstSnapshotId,
      SecondSnapshotId: secondSnapshotId,
      MaxResults: opts.maxResults,
      NextToken: opts.nextToken,
      StartingBlockIndex: opts.startingBlockIndex,
    }), { abortSignal: opts.signal }));
    return {
      blocks: (out.ChangedBlocks ?? []).map((b) => ({
        index: b.BlockIndex!,
        firstToken: b.FirstBlockToken ?? undefined,
        secondToken: b.SecondBlockToken ?? undefined,
      })),
      nextToken: out.NextToken ?? undefined,
      expiryTime: out.ExpiryTime,
      volumeSizeGiB: out.VolumeSize ?? 0,
      blockSize: out.BlockSize ?? BLOCK_SIZE,
    };
  }

  async getSnapshotBlock(
    snapshotId: string,
    blockIndex: number,
    blockToken: string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<BlockData> {
    return this.send(async () => {
      const out = await this.sendCached<GetSnapshotBlockCommandOutput>(new GetSnapshotBlockCommand({
        SnapshotId: snapshotId,
        BlockIndex: blockIndex,
        BlockToken: blockToken,
      }), opts.signal);
      const data = await readBody(out.BlockData as AsyncIterable<Uint8Array> | undefined, out.DataLength);
      return {
        data,
        checksum: out.Checksum ?? '',
        checksumAlgorithm: out.ChecksumAlgorithm ?? '',
        dataLength: out.DataLength ?? data.length,
      };
    });
  }

  async startSnapshot(input: StartSnapshotInput): Promise<StartedSnapshot> {
    const out = await this.send(() => this.client.send(new StartSnapshotCommand({
      VolumeSize: input.volumeSizeGiB,
      ParentSnapshotId: input.parentSnapshotId,
      Description: input.description,
      Tags: input.tags?.map((t) => ({ Key: t.key, Value: t.value })),
      ClientToken: input.clientToken,
      Timeout: input.timeoutMinutes,
      Encrypted: input.encrypted,
      KmsKeyArn: input.kmsKeyArn,
    }), { abortSignal: input.signal }));
    if (!out.SnapshotId) throw new EbsError('UnknownError', 'StartSnapshot returned no SnapshotId');
    return {
      snapshotId: out.SnapshotId,
      status: asStatus(out.Status),
      volumeSizeGiB: out.VolumeSize ?? input.volumeSizeGiB,
      blockSize: out.BlockSize ?? BLOCK_SIZE,
      parentSnapshotId: out.ParentSnapshotId ?? undefined,
      description: out.Description ?? undefined,
      tags: out.Tags?.map((t) => ({ key: t.Key ?? '', value: t.Value ?? '' })),
      startTime: out.StartTime,
      ownerId: out.OwnerId ?? undefined,
      kmsKeyArn: out.KmsKeyArn ?? undefined,
    };
  }

  async putSnapshotBlock(
    snapshotId: string,
    blockIndex: number,
    data: Buffer,
    checksumBase64: string,
    opts: { progress?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    await this.send(() => this.client.send(new PutSnapshotBlockCommand({
      SnapshotId: snapshotId,
      BlockIndex: blockIndex,
      BlockData: data,
      DataLength: data.length,
      Checksum: checksumBase64,
      ChecksumAlgorithm: 'SHA256',
      Progress: opts.progress,
    }), { abortSignal: opts.signal }));
  }

  async completeSnapshot(
    snapshotId: string,
    changedBlocksCount: number,
    opts: { linearChecksum?: string; signal?: AbortSignal } = {},
  ): Promise<{ status: SnapshotStatus }> {
    const out = await this.send(() => this.client.send(new CompleteSnapshotCommand({
      SnapshotId: snapshotId,
      ChangedBlocksCount: changedBlocksCount,
      ...(opts.linearChecksum
        ? { Checksum: opts.linearChecksum, ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }
        : {}),
    }), { abortSignal: opts.signal }));
    return { status: asStatus(out.Status) };
  }

  close(): void {
    this.client.destroy();
  }
}

/**
 * Build-step middleware: a PutSnapshotBlock request carries the SHA-256 of its body as its
 * Checksum; giving the signer that hash (as x-amz-content-sha256) saves it hashing the body again.
 */
const reusePayloadChecksum = ((next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
  (args: { input: { Checksum?: string; ChecksumAlgorithm?: string }; request: unknown }) => {
    const req = args.request as { headers?: Record<string, string> } | undefined;
    if (
      context.commandName === 'PutSnapshotBlockCommand' &&
      args.input.ChecksumAlgorithm === 'SHA256' && args.input.Checksum && req?.headers
    ) {
      req.headers['x-amz-content-sha256'] = Buffer.from(args.input.Checksum, 'base64').toString('hex');
    }
    return next(args);
  });

/**
 * Reads a response body into one Buffer. With a DataLength the buffer is allocated once at that
 * size and a body of any other length is an error; without one it starts at one block and grows.
 */
export async function readBody(body: AsyncIterable<Uint8Array> | undefined, dataLength?: number): Promise<Buffer> {
  if (!body) {
    if (dataLength) throw new EbsError('NetworkError', `response had no body (expected ${dataLength} bytes)`);
    return Buffer.alloc(0);
  }
  const expected = dataLength !== undefined && dataLength >= 0 ? dataLength : undefined;
  if (expected !== undefined && isReadable(body)) return readStreamInto(body, expected);
  let buf = Buffer.allocUnsafe(expected ?? BLOCK_SIZE);
  let n = 0;
  try {
    for await (const chunk of body) {
      if (n + chunk.byteLength > buf.length) {
        if (expected !== undefined) {
          destroy(body);
          throw new EbsError('NetworkError', `response body longer than its DataLength ${expected}`);
        }
        const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, n + chunk.byteLength));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      buf.set(chunk, n);
      n += chunk.byteLength;
    }
  } catch (err) {
    throw toEbsError(err);
  }
  if (expected !== undefined && n !== expected) {
    throw new EbsError('NetworkError', `response body ended after ${n} of ${expected} bytes`);
  }
  return n === buf.length ? buf : buf.subarray(0, n);
}

function isReadable(body: unknown): body is Readable {
  const b = body as Partial<Readable>;
  return typeof b.on === 'function' && typeof b.removeListener === 'function' && typeof b.resume === 'function';
}

/**
 * Reads a Node stream (the http IncomingMessage) of exactly `expected` bytes into one Buffer,
 * copying each 'data' chunk in place: cheaper than async iteration (a promise per chunk).
 */
function readStreamInto(body: Readable, expected: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const buf = Buffer.allocUnsafe(expected);
    let n = 0;
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      body.removeListener('data', onData);
      body.removeListener('end', onEnd);
      body.removeListener('error', onError);
      body.removeListener('close', onClose);
      if (err) {
        destroy(body);
        reject(toEbsError(err));
      } else {
        resolve(buf);
      }
    };
    const onData = (chunk: Uint8Array): void => {
      if (n + chunk.byteLength > expected) {
        finish(new EbsError('NetworkError', `response body longer than its DataLength ${expected}`));
        return;
      }
      buf.set(chunk, n);
      n += chunk.byteLength;
    };
    const onEnd = (): void => {
      if (n !== expected) finish(new EbsError('NetworkError', `response body ended after ${n} of ${expected} bytes`));
      else finish();
    };
    const onError = (err: Error): void => finish(err);
    const onClose = (): void => {
      const e = new Error(`response body closed after ${n} of ${expected} bytes`) as Error & { code: string };
      e.code = 'ERR_STREAM_PREMATURE_CLOSE';
      finish(e);
    };
    if (body.errored) {
      finish(body.errored);
      return;
    }
    if (body.readableEnded || body.destroyed) {
      onClose();
      return;
    }
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
  });
}

function destroy(body: unknown): void {
  const d = (body as { destroy?: () => void }).destroy;
  if (typeof d === 'function') d.call(body);
}
