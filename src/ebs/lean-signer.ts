/**
 * LeanSigner: SigV4 for the lean GetSnapshotBlock / PutSnapshotBlock path, with the SDK's own
 * signer (@smithy/signature-v4), credentials, region and clock offset.
 *
 * Contract:
 * - `sign(req)` adds x-amz-date, x-amz-content-sha256 (the header the caller set, else the empty
 *   body's hash), x-amz-security-token (with session credentials) and authorization to
 *   `req.headers` and returns them; every header present is signed except user-agent (the SDK's
 *   rule), so the caller sets exactly the headers it sends.
 * - Credentials come from the provider the EBSClient resolved (the SDK's default chain, a
 *   profile, or static keys: memoized and refreshed before expiry by the SDK); it is called on
 *   every request, so a refresh is seen at once.
 * - The signing key (four HMACs) is derived once per credentials object, day, region and service
 *   and cached here, keyed by the credentials object (the memoized provider returns the same
 *   object until it refreshes); the SDK's own cache would HMAC the secret again on every request.
 * - The signing date honours the client's systemClockOffset (the SDK's clock-skew correction).
 * - Never logs: the secret, the session token and signatures stay in the request only.
 */
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, ChecksumConstructor, HashConstructor } from '@smithy/types';

export interface SignableRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  /** Unescaped path segments joined: the signer escapes them as the SDK does. */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
}

export interface LeanSignerOptions {
  credentials: () => Promise<AwsCredentialIdentity>;
  region: string;
  service: string;
  sha256: ChecksumConstructor | HashConstructor;
  /** The client's clock offset in ms (read on every call). */
  clockOffsetMs: () => number;
}

type KeyFn = (credentials: AwsCredentialIdentity, region: string, shortDate: string, service?: string) => Promise<Uint8Array>;

export class LeanSigner {
  private readonly signer: SignatureV4;
  private readonly keys = new WeakMap<AwsCredentialIdentity, Map<string, Promise<Uint8Array>>>();

  constructor(private readonly opts: LeanSignerOptions) {
    this.signer = new SignatureV4({
      credentials: opts.credentials,
      region: opts.region,
      service: opts.service,
      sha256: opts.sha256,
      uriEscapePath: true,
    });
    // The SDK's getSigningKey hashes the secret on every call to find its cache entry: keep a
    // cache by credentials object in front of it.
    const s = this.signer as unknown as { getSigningKey: KeyFn };
    const derive = s.getSigningKey.bind(this.signer);
    s.getSigningKey = (credentials, region, shortDate, service) => {
      let byScope = this.keys.get(credentials);
      if (!byScope) this.keys.set(credentials, (byScope = new Map()));
      const scope = `${shortDate}/${region}/${service ?? opts.service}`;
      let key = byScope.get(scope);
      if (!key) {
        // One day at a time per credentials object: drop other days' keys.
        byScope.clear();
        key = derive(credentials, region, shortDate, service);
        byScope.set(scope, key);
        key.catch(() => byScope!.delete(scope));
      }
      return key;
    };
  }

  async sign(req: SignableRequest): Promise<Record<string, string>> {
    const signed = await this.signer.sign(
      { ...req, headers: req.headers },
      { signingDate: new Date(Date.now() + this.opts.clockOffsetMs()) },
    );
    return signed.headers as Record<string, string>;
  }
}
