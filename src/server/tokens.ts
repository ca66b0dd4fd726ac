/**
 * Block tokens and page tokens of the local EBS server: opaque, self-checking strings.
 *
 * Contract:
 * - A block token names one (snapshot, block index, block content) and an expiry time. It is
 *   base64url(version | expiry ms (6 bytes) | nonce (4 bytes) | HMAC-SHA256 truncated to 16 bytes)
 *   where the HMAC (keyed by the server's persisted secret) covers snapshot id, index, content
 *   digest, expiry and nonce. A token for another snapshot or index, a tampered one, or one past
 *   its expiry does not verify. Tokens differ between listings (fresh nonce and expiry).
 * - A page token (NextToken) carries the listing it continues (snapshot, or first+second
 *   snapshots for changed blocks), the next block index to scan and an expiry (60 minutes),
 *   under the same HMAC. It is opaque to clients: base64url of a small JSON plus the MAC.
 * - Nothing here logs; tokens never reach the log (handlers log indexes only).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const BLOCK_TOKEN_VERSION = 1;
const MAC_BYTES = 16;
export const PAGE_TOKEN_TTL_MS = 60 * 60 * 1000;
export const DEFAULT_BLOCK_TOKEN_TTL_S = 7 * 24 * 3600;
/** The longest block token lifetime: 100 years (a token holds its expiry in 48 bits of ms, ~8,900 years). */
export const MAX_BLOCK_TOKEN_TTL_S = 100 * 365.25 * 24 * 3600;

export type BlockTokenCheck = 'ok' | 'invalid' | 'expired';

export interface PageCursor {
  /** 'l' ListSnapshotBlocks, 'c' ListChangedBlocks. */
  kind: 'l' | 'c';
  snapshotId: string;
  firstSnapshotId?: string;
  nextIndex: number;
}

export class TokenCodec {
  constructor(
    private readonly secret: Buffer,
    readonly blockTokenTtlMs: number = DEFAULT_BLOCK_TOKEN_TTL_S * 1000,
    private readonly now: () => number = Date.now,
  ) {
    if (secret.length < 16) throw new Error('token secret too short');
  }

  /** Expiry (ms) of tokens issued now. */
  blockExpiry(): number {
    return this.now() + this.blockTokenTtlMs;
  }

  blockToken(snapshotId: string, index: number, shaHex: string, expiryMs: number): string {
    const buf = Buffer.alloc(1 + 6 + 4 + MAC_BYTES);
    buf[0] = BLOCK_TOKEN_VERSION;
    buf.writeUIntBE(Math.floor(expiryMs), 1, 6);
    randomBytes(4).copy(buf, 7);
    this.blockMac(snapshotId, index, shaHex, buf.subarray(0, 11)).copy(buf, 11);
    return buf.toString('base64url');
  }

  checkBlockToken(token: string, snapshotId: string, index: number, shaHex: string): BlockTokenCheck {
    if (typeof token !== 'string' || token.length === 0 || token.length > 64 || !/^[A-Za-z0-9_-]+$/.test(token)) {
      return 'invalid';
    }
    const buf = Buffer.from(token, 'base64url');
    if (buf.length !== 1 + 6 + 4 + MAC_BYTES || buf[0] !== BLOCK_TOKEN_VERSION) return 'invalid';
    const mac = this.blockMac(snapshotId, index, shaHex, buf.subarray(0, 11));
    if (!timingSafeEqual(mac, buf.subarray(11))) return 'invalid';
    const expiry = buf.readUIntBE(1, 6);
    if (this.now() >= expiry) return 'expired';
    return 'ok';
  }

  pageToken(cursor: PageCursor, expiryMs: number = this.now() + PAGE_TOKEN_TTL_MS): string {
    const body = Buffer.from(
      JSON.stringify({ k: cursor.kind, s: cursor.snapshotId, f: cursor.firstSnapshotId, n: cursor.nextIndex, e: Math.floor(expiryMs) }),
    );
    const mac = this.mac('page', body);
    return Buffer.concat([body, mac]).toString('base64url');
  }

  /**
   * The cursor of a page token, or a reason it is unusable. `expect` is what the current request
   * lists: a token of another listing is invalid.
   */
  readPageToken(token: string, expect: Omit<PageCursor, 'nextIndex'>): { cursor: PageCursor } | { error: 'invalid' | 'expired' } {
    if (typeof token !== 'string' || token.length === 0 || token.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(token)) {
      return { error: 'invalid' };
    }
    const raw = Buffer.from(token, 'base64url');
    if (raw.length <= MAC_BYTES) return { error: 'invalid' };
    const body = raw.subarray(0, raw.length - MAC_BYTES);
    if (!timingSafeEqual(this.mac('page', body), raw.subarray(raw.length - MAC_BYTES))) return { error: 'invalid' };
    let parsed: { k?: unknown; s?: unknown; f?: unknown; n?: unknown; e?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return { error: 'invalid' };
    }
    if (
      parsed.k !== expect.kind ||
      parsed.s !== expect.snapshotId ||
      (parsed.f ?? undefined) !== expect.firstSnapshotId ||
      typeof parsed.n !== 'number' ||
      !Number.isSafeInteger(parsed.n) ||
      parsed.n < 0 ||
      typeof parsed.e !== 'number'
    ) {
      return { error: 'invalid' };
    }
    if (this.now() >= parsed.e) return { error: 'expired' };
    return { cursor: { ...expect, nextIndex: parsed.n } };
  }

  private blockMac(snapshotId: string, index: number, shaHex: string, head: Buffer): Buffer {
    return this.mac('block', Buffer.from(`${snapshotId}|${index}|${shaHex}|`), head);
  }

  private mac(domain: string, ...parts: Buffer[]): Buffer {
    const h = createHmac('sha256', this.secret).update(domain).update('\0');
    for (const p of parts) h.update(p);
    return h.digest().subarray(0, MAC_BYTES);
  }
}
