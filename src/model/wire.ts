/**
 * What server and client agree on besides JSON bodies: media types, the `x-ferry-*` headers of a
 * raw-frame pull (SPEC.md 9.3), and the snapshot stream's line format and resume cursor (9.4).
 *
 * @module
 */

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
