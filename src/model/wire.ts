/**
 * What server and client agree on besides JSON bodies: media types, the `x-ferry-*` headers of a
 * raw-frame pull (SPEC.md 9.3), the snapshot stream's line format and resume cursor (9.4), and the
 * paths and query of sealed segments served as objects (13.2).
 *
 * @module
 */

import { SEGMENT_URL_HASH_CHARS } from "../core/limits.ts";

/** Media type of JSON requests and answers. */
export const JSON_MEDIA_TYPE = "application/json";
/** Media type of a raw-frame pull: the v3 frames byte for byte as stored. */
export const FRAMES_MEDIA_TYPE = "application/x-ferry-frames";
/** Media type of a snapshot stream: one JSON object per line. */
export const NDJSON_MEDIA_TYPE = "application/x-ndjson";

/** Headers of a raw-frame pull, and the LSN header of a write. */
export const HEADER_CURRENT_LSN = "x-ferry-current-lsn";
export const HEADER_OLDEST_LSN = "x-ferry-oldest-lsn";
export const HEADER_TERM = "x-ferry-term";
export const HEADER_TIMELINE = "x-ferry-timeline";
export const HEADER_START_LSN = "x-ferry-start-lsn";
export const HEADER_RECORD_COUNT = "x-ferry-record-count";
export const HEADER_LSN = "x-ferry-lsn";
/**
 * Headers a streaming pull adds (SPEC.md 13.1): no cache keeps it, and a proxy (nginx) passes
 * each chunk on at once instead of buffering the response.
 */
export const HEADER_CACHE_CONTROL = "cache-control";
export const CACHE_CONTROL_NO_STORE = "no-store";
export const HEADER_ACCEL_BUFFERING = "x-accel-buffering";
export const ACCEL_BUFFERING_OFF = "no";
/** Entries the state held when a snapshot started (a progress hint; the snapshot is fuzzy). */
export const HEADER_SNAPSHOT_ENTRIES = "x-ferry-snapshot-entries";

/** The only snapshot format written and read. */
export const SNAPSHOT_FORMAT = 1;

/** A (collection, key) position: where a cut snapshot resumes. */
export interface SnapshotCursor {
  collection: string;
  key: string;
}

/** First line of a snapshot stream. */
export interface SnapshotHeaderLine {
  type: "header";
  start_lsn: number;
  term: number;
  timeline: number;
  format: number;
}

/** Last line of a snapshot stream; `crc32` covers the bytes of every entry line, "\n" included. */
export interface SnapshotTrailerLine {
  type: "trailer";
  end_lsn: number;
  count: number;
  crc32: number;
}

/** One entry line of a snapshot stream, with its "\n". */
export function snapshotEntryLine(
  entry: { collection: string; key: string; value: unknown; lsn: number },
): string {
  return JSON.stringify({
    type: "entry",
    collection: entry.collection,
    key: entry.key,
    value: entry.value,
    lsn: entry.lsn,
  }) + "\n";
}

/** The `after=` text of a cursor: `<collection>/<key>`. */
export function formatSnapshotCursor(cursor: SnapshotCursor): string {
  return `${cursor.collection}/${cursor.key}`;
}

/** A resume cursor `<collection>/<key>` (the collection never holds "/"); undefined when malformed. */
export function parseSnapshotCursor(cursor: string): SnapshotCursor | undefined {
  const slash = cursor.indexOf("/");
  if (slash <= 0 || slash === cursor.length - 1) return undefined;
  return { collection: cursor.slice(0, slash), key: cursor.slice(slash + 1) };
}

// ---- sealed segments as immutable, cacheable objects (SPEC.md 13.2) ----

/** The listing of sealed segments; each one is an object below it. */
export const SEGMENTS_PATH = "/v1/segments";
/** Query parameters of a signed segment URL: key id, expiry (unix s), hex HMAC-SHA256. */
export const SIGNED_URL_KID = "kid";
export const SIGNED_URL_EXP = "exp";
export const SIGNED_URL_SIG = "sig";

/** What names a sealed segment: its timeline, LSN range and the SHA-256 (hex) of its bytes. */
export interface SegmentObjectName {
  timeline: number;
  firstLsn: number;
  lastLsn: number;
  sha256: string;
}

/**
 * The path of a sealed segment: `/v1/segments/<timeline>/<first>-<last>-<hash>`, `hash` the first
 * 16 hex digits of its SHA-256, so that two different byte sequences never share a URL.
 */
export function segmentObjectPath(name: SegmentObjectName): string {
  const hash = name.sha256.slice(0, SEGMENT_URL_HASH_CHARS);
  return `${SEGMENTS_PATH}/${name.timeline}/${name.firstLsn}-${name.lastLsn}-${hash}`;
}

const _OBJECT_NAME_PATTERN = new RegExp(
  `^(\\d{1,16})-(\\d{1,16})-([0-9a-f]{${SEGMENT_URL_HASH_CHARS}})$`,
);

/** The `<first>-<last>-<hash>` part of a segment path, parsed; undefined when malformed. */
export function parseSegmentObjectName(
  text: string,
): { firstLsn: number; lastLsn: number; hash: string } | undefined {
  const match = _OBJECT_NAME_PATTERN.exec(text);
  if (!match) return undefined;
  const firstLsn = Number(match[1]);
  const lastLsn = Number(match[2]);
  if (!Number.isSafeInteger(lastLsn) || firstLsn < 1 || lastLsn < firstLsn) return undefined;
  return { firstLsn, lastLsn, hash: match[3]! };
}
