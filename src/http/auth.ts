/**
 * Bearer-token auth (SPEC.md section 10). A tokens file lists SHA-256 hashes of tokens with a role;
 * a replica token is bound to one replica id. Tokens are compared in constant time. Without a
 * tokens file every caller is admin, and ferry only listens on loopback. The same file lists the
 * keys that sign segment URLs (`url_signing_keys`, SPEC.md 13.2; `url_signing.ts`), reloaded with
 * the tokens.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { createHash, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { ConfigError } from "../core/errors.ts";
import {
  BEARER_TOKEN_CHARS_MAX,
  TOKENS_FILE_BYTES_MAX,
  TOKENS_MAX,
  URL_SIGNING_KEY_CHARS_MAX,
  URL_SIGNING_KEY_CHARS_MIN,
  URL_SIGNING_KEYS_MAX,
} from "../core/limits.ts";
import { REPLICA_ID_PATTERN } from "../model/ids.ts";
import { URL_SIGNING_KID_PATTERN, UrlSigner } from "./url_signing.ts";

/** What a caller may do. `admin` may do everything. */
export type AuthRole = "admin" | "writer" | "replica";

/** An authenticated caller. */
export interface Principal {
  role: AuthRole;
  /** For role `replica`: the only replica id it may act as. */
  replicaId?: string;
}

/** Result of looking at a request's Authorization header. */
export type AuthResult =
  | { kind: "principal"; principal: Principal }
  | { kind: "anonymous" }
  | { kind: "invalid" };

const _tokenEntrySchema = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/i, "sha256 must be 64 hex digits"),
  role: z.enum(["admin", "writer", "replica"]),
  replica_id: z.string().regex(REPLICA_ID_PATTERN).optional(),
}).strict().refine((entry) => (entry.role === "replica") === (entry.replica_id !== undefined), {
  message: "replica_id is required for role replica and only for it",
});

const _signingKeySchema = z.object({
  kid: z.string().regex(URL_SIGNING_KID_PATTERN, "kid must be 1..64 characters of [A-Za-z0-9_.-]"),
  key: z.string().min(URL_SIGNING_KEY_CHARS_MIN).max(URL_SIGNING_KEY_CHARS_MAX),
}).strict();

const _tokensFileSchema = z.object({
  tokens: z.array(_tokenEntrySchema).max(TOKENS_MAX),
  url_signing_keys: z.array(_signingKeySchema).max(URL_SIGNING_KEYS_MAX)
    .refine((keys) => new Set(keys.map((k) => k.kid)).size === keys.length, {
      message: "each kid is listed once",
    }).optional(),
}).strict();

interface _Entry {
  hash: Uint8Array;
  principal: Principal;
}

/** Resolves callers from their bearer tokens. */
export class Auth {
  readonly enabled: boolean;
  #entries: _Entry[];
  #signer: UrlSigner;

  private constructor(enabled: boolean, entries: _Entry[], signer = new UrlSigner([])) {
    this.enabled = enabled;
    this.#entries = entries;
    this.#signer = signer;
  }

  /** Auth off: every caller is admin (ferry then refuses to listen beyond loopback). */
  static disabled(): Auth {
    return new Auth(false, []);
  }

  /** The URL signing keys of the tokens file (none without one); swapped by `reload`. */
  get urlSigner(): UrlSigner {
    return this.#signer;
  }

  /** Auth from the parsed content of a tokens file; throws `ConfigError` when it is malformed. */
  static fromJson(content: unknown, source = "tokens file"): Auth {
    const parsed = _tokensFileSchema.safeParse(content);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ConfigError(`${source}: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
    }
    const entries = parsed.data.tokens.map((entry) => ({
      hash: Uint8Array.from(
        entry.sha256.toLowerCase().match(/../g)!.map((pair) => parseInt(pair, 16)),
      ),
      principal: entry.role === "replica"
        ? { role: entry.role, replicaId: entry.replica_id! }
        : { role: entry.role },
    }));
    return new Auth(true, entries, new UrlSigner(parsed.data.url_signing_keys ?? []));
  }

  /**
   * Reads and validates a tokens file; one that is missing, unreadable, too large or malformed
   * throws `ConfigError` saying why. Needs read access to `path`.
   */
  static async load(path: string): Promise<Auth> {
    let text: string;
    try {
      const info = await Deno.stat(path);
      if (!info.isFile) throw new ConfigError(`tokens file ${path} is not a file`);
      if (info.size > TOKENS_FILE_BYTES_MAX) {
        throw new ConfigError(`tokens file ${path} is larger than ${TOKENS_FILE_BYTES_MAX} bytes`);
      }
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (!_isUnreadable(error)) throw error;
      throw new ConfigError(`tokens file ${path} cannot be read: ${error.message}`);
    }
    let content: unknown;
    try {
      content = JSON.parse(text);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      throw new ConfigError(`tokens file ${path} is not valid JSON: ${error.message}`);
    }
    return Auth.fromJson(content, `tokens file ${path}`);
  }

  /**
   * SIGHUP: re-reads the tokens file and swaps in its tokens and URL signing keys, returning how
   * many tokens it holds. A file that does not load throws `ConfigError` and the tokens and keys in
   * use stay. Needs read access to `path`.
   */
  async reload(path: string): Promise<number> {
    assert(this.enabled, "only a tokens file can be reloaded");
    const next = await Auth.load(path);
    this.#entries = next.#entries;
    this.#signer = next.#signer;
    return this.#entries.length;
  }

  /**
   * Looks at an `Authorization` header value. With auth off every caller is admin. Every
   * configured hash is compared (in constant time) whatever matches, so timing says nothing.
   */
  authenticate(header: string | null | undefined): AuthResult {
    if (!this.enabled) return { kind: "principal", principal: { role: "admin" } };
    if (!header) return { kind: "anonymous" };
    const match = _BEARER_PATTERN.exec(header);
    if (!match) return { kind: "invalid" };
    const presented = createHash("sha256").update(match[1]!).digest();
    let found: Principal | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.hash, presented) && found === undefined) found = entry.principal;
    }
    return found ? { kind: "principal", principal: found } : { kind: "invalid" };
  }
}

/** Errors of reading a file that an operator fixes (wrong path, mode, or a directory). */
function _isUnreadable(error: unknown): error is Error {
  return error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.IsADirectory || error instanceof Deno.errors.NotADirectory ||
    error instanceof Deno.errors.InvalidData;
}

/** `Bearer <token>`: printable ASCII, bounded (a longer header is not a token of ours). */
const _BEARER_PATTERN = new RegExp(`^Bearer ([\\x21-\\x7e]{1,${BEARER_TOKEN_CHARS_MAX}})$`);

/** True for loopback listen addresses (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" ||
    /^127(\.\d{1,3}){3}$/.test(host);
}
