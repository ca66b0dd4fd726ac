/**
 * The six EBS direct API operations of the local server: HTTP input (path parameters, query,
 * headers, body) → ServerStore → HTTP output, exactly in the shapes of DESIGN §1.
 *
 * Contract:
 * - Every input is validated here or in the store; failures are thrown as ApiError and turned
 *   into the service's error responses by http-server.ts.
 * - StartSnapshot 201 JSON; PutSnapshotBlock 201 with checksum headers and an empty body;
 *   CompleteSnapshot 202 `{Status}`; GetSnapshotBlock 200 raw bytes with x-amz-Data-Length /
 *   x-amz-Checksum / x-amz-Checksum-Algorithm; the two listings 200 JSON with ExpiryTime (epoch
 *   seconds), VolumeSize, BlockSize and NextToken only while more may follow.
 * - GetSnapshotBlock checks, in order: snapshot (exists, completed), index in the volume, block
 *   written (else 404), block token (else ValidationException INVALID_BLOCK_TOKEN).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BLOCK_SIZE, MAX_LIST_RESULTS, MIN_LIST_RESULTS } from '../ebs/constants.js';
import { Reason } from '../ebs/errors.js';
import type { Logger } from '../util/log.js';
import type { BlockBufferPool } from './buffer-pool.js';
import type { Faults } from './faults.js';
import { pageOf } from './pagination.js';
import { OWNER_ID, type ServerStore, type Snapshot, type StartParams, type Tag } from './store.js';
import type { TokenCodec } from './tokens.js';
import { epochSeconds, header, notFound, parseUint, sendJson, validation } from './wire.js';

export interface HandlerDeps {
  store: ServerStore;
  tokens: TokenCodec;
  faults: Faults;
  logger: Logger;
  pool: BlockBufferPool;
  /** Index range scanned per listing page; 0 = unbounded (see pagination.ts). */
  listScanWindow: number;
}

export interface OpRequest {
  req: IncomingMessage;
  res: ServerResponse;
  body: Buffer;
  /** Raw SHA-256 digest of `body`. */
  bodySha: Buffer;
  query: URLSearchParams;
  snapshotId: string;
  blockIndex?: string;
}

// ---- StartSnapshot ----------------------------------------------------------------------------

export async function startSnapshot(d: HandlerDeps, r: OpRequest): Promise<void> {
  let input: Record<string, unknown>;
  try {
    input = r.body.length === 0 ? {} : (JSON.parse(r.body.toString('utf8')) as Record<string, unknown>);
  } catch {
    throw validation('The request body is not valid JSON.', Reason.INVALID_PARAMETER_VALUE);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw validation('The request body must be a JSON object.', Reason.INVALID_PARAMETER_VALUE);
  }
  const params: StartParams = {
    volumeSize: field(input, 'VolumeSize', 'number') as number,
    parentSnapshotId: field(input, 'ParentSnapshotId', 'string') as string | undefined,
    description: field(input, 'Description', 'string') as string | undefined,
    clientToken: field(input, 'ClientToken', 'string') as string | undefined,
    encrypted: field(input, 'Encrypted', 'boolean') as boolean | undefined,
    kmsKeyArn: field(input, 'KmsKeyArn', 'string') as string | undefined,
    timeout: field(input, 'Timeout', 'number') as number | undefined,
    tags: parseTags(input.Tags),
  };
  if (params.volumeSize === undefined) throw validation('VolumeSize is required.', Reason.INVALID_VOLUME_SIZE);
  const snap = await d.store.start(params);
  sendJson(r.res, 201, describeSnapshot(snap));
}

function field(input: Record<string, unknown>, name: string, type: 'number' | 'string' | 'boolean'): unknown {
  const v = input[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type) throw validation(`${name} must be a ${type}.`, Reason.INVALID_PARAMETER_VALUE);
  return v;
}

function parseTags(v: unknown): Tag[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw validation('Tags must be a list of {Key, Value}.', 'INVALID_TAG');
  return v.map((t: unknown) => {
    const o = t as { Key?: unknown; Value?: unknown } | null;
    if (typeof o !== 'object' || o === null || typeof o.Key !== 'string' || (o.Value !== undefined && typeof o.Value !== 'string')) {
      throw validation('Each tag must have a string Key and Value.', 'INVALID_TAG');
    }
    return { Key: o.Key, Value: (o.Value as string | undefined) ?? '' };
  });
}

export function describeSnapshot(s: Snapshot): Record<string, unknown> {
  const out: Record<string, unknown> = {
    SnapshotId: s.id,
    OwnerId: OWNER_ID,
    Status: s.status,
    StartTime: epochSeconds(s.startTime),
    VolumeSize: s.volumeSize,
    BlockSize: BLOCK_SIZE,
    SseType: s.meta.encrypted ? 'sse-ebs' : 'none',
  };
  if (s.meta.tags) out.Tags = s.meta.tags;
  if (s.parent) out.ParentSnapshotId = s.parent.id;
  if (s.meta.kmsKeyArn) out.KmsKeyArn = s.meta.kmsKeyArn;
  if (s.meta.description !== undefined) out.Description = s.meta.description;
  return out;
}

// ---- PutSnapshotBlock -------------------------------------------------------------------------

export async function putSnapshotBlock(d: HandlerDeps, r: OpRequest): Promise<void> {
  const index = blockIndexOf(r);
  const snap = d.store.get(r.snapshotId);
  const missMs = d.faults.opts.missingAfterStartMs;
  if (missMs > 0 && d.store.now() - snap.startTime < missMs) {
    d.faults.counts.missing++;
    throw notFound(`The snapshot '${r.snapshotId}' does not exist.`, Reason.SNAPSHOT_NOT_FOUND);
  }
  d.store.writable(r.snapshotId, index);
  const dataLength = parseUint(header(r.req, 'x-amz-data-length'));
  if (dataLength === undefined) throw validation('The x-amz-Data-Length header is required.', Reason.INVALID_PARAMETER_VALUE);
  if (dataLength !== BLOCK_SIZE) {
    throw validation(`DataLength must be ${BLOCK_SIZE} bytes (got ${dataLength}).`, Reason.INVALID_PARAMETER_VALUE);
  }
  if (r.body.length !== dataLength) {
    throw validation(`The body has ${r.body.length} bytes but x-amz-Data-Length says ${dataLength}.`, Reason.INVALID_PARAMETER_VALUE);
  }
  const algorithm = header(r.req, 'x-amz-checksum-algorithm');
  if (algorithm !== 'SHA256') throw validation('x-amz-Checksum-Algorithm must be SHA256.', Reason.INVALID_PARAMETER_VALUE);
  const checksum = header(r.req, 'x-amz-checksum');
  if (!checksum) throw validation('The x-amz-Checksum header is required.', Reason.INVALID_PARAMETER_VALUE);
  const progress = header(r.req, 'x-amz-progress');
  if (progress !== undefined) {
    const p = parseUint(progress);
    if (p === undefined || p > 100) throw validation('x-amz-Progress must be 0 to 100.', Reason.INVALID_PARAMETER_VALUE);
  }
  const actual = r.bodySha.toString('base64');
  if (checksum !== actual) {
    throw validation('The checksum in x-amz-Checksum does not match the SHA-256 of the block data.', Reason.CHECKSUM_MISMATCH);
  }
  await d.store.put(r.snapshotId, index, r.body, r.bodySha.toString('hex'));
  r.res.writeHead(201, {
    'x-amz-Checksum': actual,
    'x-amz-Checksum-Algorithm': 'SHA256',
    'Content-Length': '0',
  });
  r.res.end();
}

function blockIndexOf(r: OpRequest): number {
  const index = parseUint(r.blockIndex);
  if (index === undefined) throw validation(`The block index '${r.blockIndex}' is not valid.`, Reason.INVALID_BLOCK);
  return index;
}

// ---- CompleteSnapshot -------------------------------------------------------------------------

export async function completeSnapshot(d: HandlerDeps, r: OpRequest): Promise<void> {
  const countHeader = header(r.req, 'x-amz-changedblockscount');
  const count = parseUint(countHeader);
  if (count === undefined) {
    throw validation('The x-amz-ChangedBlocksCount header is required (a non-negative integer).', Reason.INVALID_PARAMETER_VALUE);
  }
  const checksum = header(r.req, 'x-amz-checksum');
  const algorithm = header(r.req, 'x-amz-checksum-algorithm');
  const method = header(r.req, 'x-amz-checksum-aggregation-method');
  if (algorithm !== undefined && algorithm !== 'SHA256') {
    throw validation('x-amz-Checksum-Algorithm must be SHA256.', Reason.INVALID_PARAMETER_VALUE);
  }
  if (method !== undefined && method !== 'LINEAR') {
    throw validation('x-amz-Checksum-Aggregation-Method must be LINEAR.', Reason.INVALID_PARAMETER_VALUE);
  }
  if (checksum !== undefined && (algorithm === undefined || method === undefined)) {
    throw validation(
      'x-amz-Checksum needs x-amz-Checksum-Algorithm SHA256 and x-amz-Checksum-Aggregation-Method LINEAR.',
      Reason.INVALID_PARAMETER_VALUE,
    );
  }
  const status = await d.store.complete(r.snapshotId, count, checksum);
  sendJson(r.res, 202, { Status: status });
}

// ---- GetSnapshotBlock -------------------------------------------------------------------------

export async function getSnapshotBlock(d: HandlerDeps, r: OpRequest): Promise<void> {
  const snap = d.store.readable(r.snapshotId);
  const index = blockIndexOf(r);
  if (index >= snap.blockCount) {
    throw validation(`The block index ${index} is outside the volume (${snap.volumeSize} GiB).`, Reason.INVALID_BLOCK);
  }
  const token = r.query.get('blockToken');
  if (!token) throw validation('The blockToken parameter is required.', Reason.INVALID_BLOCK_TOKEN);
  const sha = d.store.lookup(snap, index);
  if (sha === undefined) {
    throw notFound(`The block ${index} of snapshot '${snap.id}' does not exist (it was never written).`);
  }
  const check = d.tokens.checkBlockToken(token, snap.id, index, sha);
  if (check !== 'ok') {
    throw validation(
      check === 'expired'
        ? `The block token for block ${index} has expired: list the snapshot's blocks again.`
        : `The block token for block ${index} is not valid for this snapshot and block.`,
      Reason.INVALID_BLOCK_TOKEN,
    );
  }
  const data = await d.store.readBlock(sha, d.pool.take());
  d.faults.maybeCorrupt(data);
  r.res.writeHead(200, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(BLOCK_SIZE),
    'x-amz-Data-Length': String(BLOCK_SIZE),
    'x-amz-Checksum': Buffer.from(sha, 'hex').toString('base64'),
    'x-amz-Checksum-Algorithm': 'SHA256',
  });
  // 'finish': the body was handed to the OS, the buffer is free again (not on an aborted response).
  r.res.once('finish', () => d.pool.give(data));
  r.res.end(data);
}

// ---- ListSnapshotBlocks / ListChangedBlocks ---------------------------------------------------

interface PageParams {
  start: number;
  maxResults: number;
}

function pageParams(d: HandlerDeps, r: OpRequest, kind: 'l' | 'c', snapshotId: string, firstSnapshotId?: string): PageParams {
  const maxRaw = r.query.get('maxResults');
  let maxResults = MAX_LIST_RESULTS;
  if (maxRaw !== null) {
    const m = parseUint(maxRaw);
    if (m === undefined || m < MIN_LIST_RESULTS || m > MAX_LIST_RESULTS) {
      throw validation(`MaxResults must be from ${MIN_LIST_RESULTS} to ${MAX_LIST_RESULTS} (got '${maxRaw}').`, Reason.INVALID_PARAMETER_VALUE);
    }
    maxResults = m;
  }
  const startRaw = r.query.get('startingBlockIndex');
  let start = 0;
  if (startRaw !== null) {
    const s = parseUint(startRaw);
    if (s === undefined) throw validation(`StartingBlockIndex '${startRaw}' is not valid.`, Reason.INVALID_PARAMETER_VALUE);
    start = s;
  }
  const pageToken = r.query.get('pageToken');
  if (pageToken !== null && pageToken !== '') {
    // NextToken wins over StartingBlockIndex.
    const read = d.tokens.readPageToken(pageToken, { kind, snapshotId, firstSnapshotId });
    if ('error' in read) {
      throw validation(
        read.error === 'expired' ? 'The pagination token has expired.' : 'The pagination token is not valid for this request.',
        Reason.INVALID_PAGE_TOKEN,
      );
    }
    start = read.cursor.nextIndex;
  }
  return { start, maxResults };
}

export async function listSnapshotBlocks(d: HandlerDeps, r: OpRequest): Promise<void> {
  const snap = d.store.readable(r.snapshotId);
  const { start, maxResults } = pageParams(d, r, 'l', snap.id);
  const view = d.store.view(snap);
  const page = pageOf(view, start, maxResults, d.listScanWindow);
  const expiry = d.tokens.blockExpiry();
  const blocks = new Array<{ BlockIndex: number; BlockToken: string }>(page.to - page.from);
  for (let p = page.from; p < page.to; p++) {
    const index = view[p]!;
    blocks[p - page.from] = { BlockIndex: index, BlockToken: d.tokens.blockToken(snap.id, index, d.store.lookup(snap, index)!, expiry) };
  }
  const out: Record<string, unknown> = {
    Blocks: blocks,
    ExpiryTime: epochSeconds(expiry),
    VolumeSize: snap.volumeSize,
    BlockSize: BLOCK_SIZE,
  };
  if (page.nextIndex !== null) out.NextToken = d.tokens.pageToken({ kind: 'l', snapshotId: snap.id, nextIndex: page.nextIndex });
  sendJson(r.res, 200, out);
}

export async function listChangedBlocks(d: HandlerDeps, r: OpRequest): Promise<void> {
  const second = d.store.readable(r.snapshotId);
  const firstId = r.query.get('firstSnapshotId') || undefined;
  const first = firstId !== undefined ? d.store.readable(firstId) : undefined;
  const changed = first ? d.store.changed(first, second) : d.store.view(second);
  const { start, maxResults } = pageParams(d, r, 'c', second.id, first?.id);
  const page = pageOf(changed, start, maxResults, d.listScanWindow);
  const expiry = d.tokens.blockExpiry();
  const blocks: { BlockIndex: number; FirstBlockToken?: string; SecondBlockToken?: string }[] = [];
  for (let p = page.from; p < page.to; p++) {
    const index = changed[p]!;
    const entry: { BlockIndex: number; FirstBlockToken?: string; SecondBlockToken?: string } = { BlockIndex: index };
    const a = first ? d.store.lookup(first, index) : undefined;
    if (a !== undefined) entry.FirstBlockToken = d.tokens.blockToken(first!.id, index, a, expiry);
    const b = d.store.lookup(second, index);
    if (b !== undefined) entry.SecondBlockToken = d.tokens.blockToken(second.id, index, b, expiry);
    blocks.push(entry);
  }
  const out: Record<string, unknown> = {
    ChangedBlocks: blocks,
    ExpiryTime: epochSeconds(expiry),
    VolumeSize: second.volumeSize,
    BlockSize: BLOCK_SIZE,
  };
  if (page.nextIndex !== null) {
    out.NextToken = d.tokens.pageToken({ kind: 'c', snapshotId: second.id, firstSnapshotId: first?.id, nextIndex: page.nextIndex });
  }
  sendJson(r.res, 200, out);
}

export type Handler = (d: HandlerDeps, r: OpRequest) => Promise<void>;

