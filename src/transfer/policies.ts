/**
 * Retry policy of a transfer's first request (the first listing page, StartSnapshot): a few
 * quick attempts, so a wrong endpoint, a server that is down or a DNS typo is reported within
 * seconds instead of after READ_RETRY's 45 s budget. Once the service has answered, the normal
 * policies (READ_RETRY / WRITE_RETRY) ride out transient trouble.
 */
import type { RetryPolicy } from '../ebs/retry.js';

export const FIRST_CALL_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 250, maxDelayMs: 2_000, budgetMs: 8_000 };
