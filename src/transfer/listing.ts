/**
 * openTransferListing: a snapshot's block listing as import and export read it.
 *
 * Contract: the first page is fetched before anything else happens (with FIRST_CALL_RETRY by
 * default, so a dead endpoint or unknown snapshot is reported within seconds; its failure leaves
 * as a UserError built by `describe`); `pages` then yields that first page again followed by the
 * rest, fetched on demand with READ_RETRY, one listing request at a time, at most 20 per second.
 */
import type { BlockPage, EbsApi } from '../ebs/api.js';
import { snapshotBlockPages } from '../ebs/paging.js';
import { RequestLimiter } from '../ebs/limiter.js';
import { READ_RETRY, type RetryPolicy } from '../ebs/retry.js';
import type { UserError } from '../errors/user-error.js';
import { FIRST_CALL_RETRY } from './policies.js';

export interface TransferListingOptions {
  readPolicy?: RetryPolicy;
  firstCallPolicy?: RetryPolicy;
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface TransferListing {
  /** The first page; undefined when the listing returned none. */
  first: BlockPage | undefined;
  /** Every page, the first included. */
  pages: AsyncGenerator<BlockPage>;
}

export async function openTransferListing(
  api: EbsApi,
  snapshotId: string,
  opts: TransferListingOptions,
  describe: (err: unknown) => UserError,
): Promise<TransferListing> {
  const rest = snapshotBlockPages(api, snapshotId, {
    policy: opts.readPolicy ?? READ_RETRY,
    firstPagePolicy: opts.firstCallPolicy ?? FIRST_CALL_RETRY,
    limiter: new RequestLimiter({ maxConcurrency: 1, ratePerSecond: 20 }),
    signal: opts.signal,
    sleep: opts.sleep,
  });
  let head: IteratorResult<BlockPage>;
  try {
    head = await rest.next();
  } catch (err) {
    throw describe(err);
  }
  const first = head.done ? undefined : head.value;
  const pages = (async function* () {
    if (first) yield first;
    yield* rest;
  })();
  return { first, pages };
}
