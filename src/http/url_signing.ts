/**
 * Signed segment URLs (SPEC.md 13.2): `<path>?kid=<key id>&exp=<unix s>&sig=<hex HMAC-SHA256(key,
 * "<path>?kid=<kid>&exp=<exp>")>`. Keys come from the tokens file's `url_signing_keys`: every listed
 * key verifies, the first signs, so a key is rotated by adding the new one first, waiting for the
 * URLs signed with the old one to expire, then removing it.
 *
 * `exp` is the start of the next hour plus one hour: every replica that lists within one hour gets
 * the same URL (one cache entry per segment per hour in a cache keyed on the whole URL), and no URL
 * lives less than an hour. Signatures are compared in constant time.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import { URL_SIGNATURE_PERIOD_S } from "../core/limits.ts";
import { SIGNED_URL_EXP, SIGNED_URL_KID, SIGNED_URL_SIG } from "../model/wire.ts";

/** A key id: what a signed URL names its key by (URL-safe as it is). */
export const URL_SIGNING_KID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** One URL signing key of the tokens file. */
export interface UrlSigningKey {
  kid: string;
  /** The HMAC key: the UTF-8 bytes of this text. */
  key: string;
}

/** The signature query of a request, as sent (any of them may be missing). */
export interface SignatureQuery {
  kid: string | undefined;
  exp: string | undefined;
  sig: string | undefined;
}

const _SIG_PATTERN = /^[0-9a-f]{64}$/;
const _EXP_PATTERN = /^\d{1,12}$/;
const _MS_PER_S = 1000;

/** The `exp` of a URL signed at `nowMs`: the start of the next hour plus one hour, in unix s. */
export function signatureExpiry(nowMs: number): number {
  const period = URL_SIGNATURE_PERIOD_S;
  return (Math.floor(nowMs / _MS_PER_S / period) + 2) * period;
}

/** Signs and verifies segment URLs with the keys of the tokens file. */
export class UrlSigner {
  readonly #keys: ReadonlyMap<string, Uint8Array>;
  readonly #signingKid: string | undefined;

  constructor(keys: readonly UrlSigningKey[]) {
    const encoder = new TextEncoder();
    this.#keys = new Map(keys.map(({ kid, key }) => [kid, encoder.encode(key)]));
    this.#signingKid = keys[0]?.kid;
  }

  /** True when at least one key is configured (listings then carry signed URLs). */
  get enabled(): boolean {
    return this.#signingKid !== undefined;
  }

  /** How many keys verify. */
  get size(): number {
    return this.#keys.size;
  }

  /**
   * `path` with its signature query, signed with the first key at `nowMs`; `path` itself when no
   * key is configured.
   */
  sign(path: string, nowMs: number): string {
    const kid = this.#signingKid;
    if (kid === undefined) return path;
    const exp = signatureExpiry(nowMs);
    const sig = _mac(this.#keys.get(kid)!, path, kid, String(exp)).toString("hex");
    return `${path}?${SIGNED_URL_KID}=${kid}&${SIGNED_URL_EXP}=${exp}&${SIGNED_URL_SIG}=${sig}`;
  }

  /**
   * Why the signature of a request for `path` does not hold at `nowMs` (a malformed query, an
   * unknown key id, an expired URL, a wrong signature), or undefined when it does. The MAC is
   * compared in constant time.
   */
  refusal(path: string, query: SignatureQuery, nowMs: number): string | undefined {
    const { kid, exp, sig } = query;
    if (kid === undefined || exp === undefined || sig === undefined) {
      return `a signed URL carries ${SIGNED_URL_KID}, ${SIGNED_URL_EXP} and ${SIGNED_URL_SIG}`;
    }
    if (!_EXP_PATTERN.test(exp) || !_SIG_PATTERN.test(sig)) return "the signature is malformed";
    const key = this.#keys.get(kid);
    if (key === undefined) return "the URL is signed with an unknown key";
    if (Number(exp) * _MS_PER_S <= nowMs) return "the signed URL has expired";
    const expected = _mac(key, path, kid, exp);
    if (!timingSafeEqual(expected, Buffer.from(sig, "hex"))) return "the signature does not match";
    return undefined;
  }
}

/** HMAC-SHA256(key, "<path>?kid=<kid>&exp=<exp>"). */
function _mac(key: Uint8Array, path: string, kid: string, exp: string): Buffer {
  return createHmac("sha256", key)
    .update(`${path}?${SIGNED_URL_KID}=${kid}&${SIGNED_URL_EXP}=${exp}`)
    .digest();
}
