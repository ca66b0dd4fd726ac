/**
 * Connection limits of the local EBS server (http-server.ts applies them; the serve command sets
 * maxConnections). Kept apart so the CLI can show the defaults without loading the server.
 */
export interface ServerLimits {
  /** Open connections at once; more are closed as they arrive. */
  maxConnections: number;
  /** Time for a request's headers to arrive, from its first byte. */
  headersTimeoutMs: number;
  /** Time for a whole request (headers and body) to arrive. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 1024,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 120_000,
  keepAliveTimeoutMs: 65_000,
};
