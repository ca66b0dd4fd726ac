/**
 * Redaction of secrets from anything about to be logged: block and page tokens, credentials,
 * session tokens, Authorization headers and SigV4 signatures never reach a log.
 *
 * Contract:
 * - `redactValue(v)` returns a copy of `v` (the input is never modified) in which, at any depth
 *   (up to MAX_DEPTH; deeper is cut), inside arrays, Maps' values, Error causes, AggregateError's
 *   `errors` and error properties such as an SDK error's `$response.headers`:
 *   - a property whose NAME looks secret (SECRET_KEY: token, secret, password, credential(s),
 *     authorization, signature, session, cookie, access key id) is replaced by '[redacted]' unless
 *     its value is a number, boolean, null or undefined (counters such as `tokenRefreshes` stay);
 *   - every string (messages, stacks, URLs) goes through `redactText`;
 *   - an Error becomes a plain object {type, message, stack, code?, cause?, errors?, ...own props}.
 * - `redactText(s)` replaces secret VALUES found inside free text: `blockToken=…`,
 *   `X-Amz-Signature=…`, `X-Amz-Credential=…`, `X-Amz-Security-Token=…`, `Signature=…`,
 *   `Credential=…`, `Authorization: …`, `Bearer …`, and AWS access key ids (AKIA…/ASIA…).
 * Pure functions, no I/O: src/util/log.ts plugs them into pino (objects, bindings and the
 * final line).
 */

export const REDACTED = '[redacted]';
const MAX_DEPTH = 10;

/** Property names whose values are secrets (case-insensitive, anywhere in the name). */
export const SECRET_KEY = /token|secret|passw|credential|authorization|signature|session|cookie|access-?key-?id|api-?key|private-?key/i;

const TEXT_RULES: [RegExp, string][] = [
  // key=value in URLs, query strings and SigV4 headers (stop at a separator or a quote)
  [/\b((?:block|page|next|first|second|client)?Token|X-Amz-Security-Token|X-Amz-Signature|X-Amz-Credential|Signature|Credential)=([^&\s"',;\\]+)/gi, `$1=${REDACTED}`],
  // headers written as text: "authorization: AWS4-HMAC-SHA256 ..." up to the end of the line or a quote
  [/\b(authorization|x-amz-security-token|cookie)(["']?\s*[:=]\s*["']?)([^"'\n\\]+)/gi, `$1$2${REDACTED}`],
  [/\bBearer\s+[A-Za-z0-9._~+/=-]+/g, `Bearer ${REDACTED}`],
  // AWS access key ids (long-term AKIA, temporary ASIA)
  [/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, REDACTED],
];

export function redactText(s: string): string {
  let out = s;
  for (const [re, by] of TEXT_RULES) out = out.replace(re, by);
  return out;
}

function isErrorLike(v: object): v is Error {
  return v instanceof Error || (typeof (v as Error).message === 'string' && typeof (v as Error).stack === 'string');
}

export function redactValue(value: unknown): unknown {
  return walk(value, 0, new WeakSet());
}

function walk(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[circular]';
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  if (value instanceof Date) return value;
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => walk(v, depth + 1, seen));
    if (value instanceof Map) return walkEntries([...value.entries()].map(([k, v]) => [String(k), v]), depth, seen);
    if (value instanceof Set) return [...value].map((v) => walk(v, depth + 1, seen));
    if (isErrorLike(value)) {
      const entries: [string, unknown][] = [
        ['type', value.constructor?.name ?? 'Error'],
        ['message', value.message],
        ['stack', value.stack],
      ];
      for (const key of Object.keys(value)) {
        if (key !== 'message' && key !== 'stack') entries.push([key, (value as unknown as Record<string, unknown>)[key]]);
      }
      // Non-enumerable on most errors: the cause chain and AggregateError's list.
      if ('cause' in value && !Object.keys(value).includes('cause')) entries.push(['cause', value.cause]);
      if (value instanceof AggregateError && !Object.keys(value).includes('errors')) entries.push(['errors', value.errors]);
      return walkEntries(entries, depth, seen);
    }
    return walkEntries(Object.entries(value), depth, seen);
  } finally {
    seen.delete(value);
  }
}

function walkEntries(entries: [string, unknown][], depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of entries) {
    if (SECRET_KEY.test(key) && v !== null && v !== undefined && typeof v !== 'number' && typeof v !== 'boolean') {
      out[key] = REDACTED;
    } else {
      out[key] = walk(v, depth + 1, seen);
    }
  }
  return out;
}
