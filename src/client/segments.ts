/**
 * `SegmentClient`: the client side of sealed segments as immutable objects (SPEC.md 13.2). It lists
 * them on the primary (`GET /v1/segments`, bearer token) and downloads each one from its `url`,
 * resolved against `segmentsUrl`: the primary itself, or any HTTP cache or CDN in front of it. A
 * download is checked before anything may use it: its length and SHA-256 against the listing, then
 * every frame's CRC in one pass (`decodeFrames`, as a raw-frame pull is) and its LSN range. A
 * signed URL goes without the bearer token (the signature lets it in, and a shared cache may keep
 * the answer); an unsigned one carries it (and the primary answers `private`).
 *
 * @module
 */

import { FerryResponseError } from "../core/errors.ts";
import { SEGMENT_LIST_BYTES_MAX } from "../core/limits.ts";
import { JSON_MEDIA_TYPE, SEGMENTS_PATH, SIGNED_URL_SIG } from "../model/wire.ts";
import type { DecodedFrame } from "../wal/frame.ts";
import { DEFAULT_USER_AGENT } from "./client.ts";
import { asObject, decodeFrames, fieldReader, httpErrorOf, readBody } from "./responses.ts";

/** One sealed segment as the primary lists it. */
export interface SegmentRef {
  firstLsn: number;
  lastLsn: number;
  bytes: number;
  /** SHA-256 of its bytes, 64 lowercase hex digits. */
  sha256: string;
  /** Where to fetch it: relative to the primary (or `segmentsUrl`), signed when keys exist. */
  url: string;
}

/** The listing: the timeline and its sealed segments, oldest first. */
export interface SegmentList {
  timeline: number;
  segments: SegmentRef[];
}

/** A downloaded segment: its frames, or those before the first check that failed and why. */
export interface SegmentDownload {
  frames: DecodedFrame[];
  /** Set when the download failed a check; nothing of it may be applied then. */
  corrupt?: { reason: string };
}

/** Options of `new SegmentClient()`. */
export interface SegmentClientOptions {
  /** The primary's base URL: the listing comes from it. */
  primaryUrl: string;
  /** Base URL segment URLs are resolved against (a cache or CDN); `primaryUrl` when absent. */
  segmentsUrl?: string;
  /** Bearer token for the listing, and for unsigned segment URLs. */
  token?: string;
  fetch?: typeof fetch;
  userAgent?: string;
}

const _SHA256_PATTERN = /^[0-9a-f]{64}$/;

/**
 * Lists and downloads sealed segments. Every method does network I/O: it needs `--allow-net` for
 * the primary's host and the segments URL's host.
 *
 * @example
 * ```ts
 * const segments = new SegmentClient({ primaryUrl: "http://127.0.0.1:8787", segmentsUrl: "http://cache:8080" });
 * for (const ref of (await segments.list()).segments) {
 *   const { frames, corrupt } = await segments.download(ref);
 *   if (corrupt) throw new Error(corrupt.reason);
 *   console.log(ref.firstLsn, frames.length);
 * }
 * ```
 */
export class SegmentClient {
  readonly #primaryUrl: string;
  readonly #segmentsBase: URL;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;
  readonly #token: string | undefined;

  /** A malformed `primaryUrl` or `segmentsUrl` throws `TypeError`. */
  constructor(options: SegmentClientOptions) {
    this.#primaryUrl = new URL(options.primaryUrl).href.replace(/\/+$/, "");
    this.#segmentsBase = new URL(_withSlash(options.segmentsUrl ?? options.primaryUrl));
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#headers = { "user-agent": options.userAgent ?? DEFAULT_USER_AGENT };
    this.#token = options.token;
  }

  /** The sealed segments (`GET /v1/segments` on the primary), oldest first. */
  async list(signal?: AbortSignal): Promise<SegmentList> {
    const headers = { ...this.#headers, accept: JSON_MEDIA_TYPE, ...this.#bearer() };
    const response = await this.#fetch(`${this.#primaryUrl}${SEGMENTS_PATH}`, { headers, signal });
    if (!response.ok) throw await httpErrorOf(response, `GET ${SEGMENTS_PATH}`);
    const text = new TextDecoder().decode(await readBody(response, SEGMENT_LIST_BYTES_MAX));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new FerryResponseError(`GET ${SEGMENTS_PATH}: the answer is not JSON`);
    }
    const field = fieldReader(asObject(parsed, "segments"), "segments");
    const segments = field.array("segments").map((item, index) => {
      const context = `segments[${index}]`;
      const entry = fieldReader(asObject(item, context), context);
      const ref = {
        firstLsn: entry.uint("first_lsn"),
        lastLsn: entry.uint("last_lsn"),
        bytes: entry.uint("bytes"),
        sha256: entry.string("sha256"),
        url: entry.string("url"),
      };
      if (!_SHA256_PATTERN.test(ref.sha256) || ref.lastLsn < ref.firstLsn) {
        throw new FerryResponseError(`${context}: not a sealed segment's entry`);
      }
      return ref;
    });
    return { timeline: field.uint("timeline"), segments };
  }

  /** Where `ref` is fetched from: its `url` resolved against the segments base URL. */
  urlOf(ref: SegmentRef): URL {
    return new URL(ref.url.replace(/^\/+/, ""), this.#segmentsBase);
  }

  /**
   * Downloads `ref` and checks it (length, SHA-256, every CRC, LSN range). A non-2xx answer throws
   * `FerryHttpError` (410 `wal_removed` when it was pruned); a download that fails a check is
   * returned with `corrupt` and no frame.
   */
  async download(ref: SegmentRef, signal?: AbortSignal): Promise<SegmentDownload> {
    const url = this.urlOf(ref);
    const signed = url.searchParams.has(SIGNED_URL_SIG);
    const headers = { ...this.#headers, ...(signed ? {} : this.#bearer()) };
    const response = await this.#fetch(url, { headers, signal });
    if (!response.ok) throw await httpErrorOf(response, `GET ${url.pathname}`);
    let bytes: Uint8Array;
    try {
      bytes = await readBody(response, ref.bytes);
    } catch (error) {
      if (!(error instanceof FerryResponseError)) throw error;
      return { frames: [], corrupt: { reason: error.message } };
    }
    return await checkSegment(ref, bytes);
  }

  #bearer(): Record<string, string> {
    return this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` };
  }
}

/**
 * Checks the bytes of a downloaded segment against its listing entry: its length and SHA-256, then
 * every frame's CRC in one pass, and that the frames are exactly `firstLsn..lastLsn`. Returns the
 * frames, or `corrupt` (and none) at the first check that fails.
 */
export async function checkSegment(ref: SegmentRef, bytes: Uint8Array): Promise<SegmentDownload> {
  const fail = (reason: string) => ({ frames: [], corrupt: { reason } });
  if (bytes.byteLength !== ref.bytes) {
    return fail(`the body has ${bytes.byteLength} bytes, the listing ${ref.bytes}`);
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  const sha256 = Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
  if (sha256 !== ref.sha256) return fail(`its SHA-256 is ${sha256}, the listing's ${ref.sha256}`);
  const count = ref.lastLsn - ref.firstLsn + 1;
  const { frames, corrupt } = decodeFrames(bytes, count);
  if (corrupt) return fail(`frame at offset ${corrupt.offset}: ${corrupt.reason}`);
  if (
    frames.length !== count || frames[0]?.lsn !== ref.firstLsn || frames.at(-1)?.lsn !== ref.lastLsn
  ) {
    return fail(`its frames are not LSN ${ref.firstLsn}..${ref.lastLsn}`);
  }
  return { frames };
}

function _withSlash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}
