/**
 * Decoding a change record the primary wrote itself (its own spool, every record validated before
 * it was written): only the shape is checked. Kept apart from `records.ts` because the state's
 * apply worker decodes with it and must not load zod and Hono (their module graph is most of a
 * worker's start-up, and their files are outside what the worker may read).
 *
 * @module
 */

import { decodeUtf8Strict } from "../core/bytes.ts";
import { CorruptFrameError } from "../core/errors.ts";

/** One key-level change. `value` is present exactly for puts. */
export interface ChangeRecord {
  op: "put" | "delete";
  collection: string;
  key: string;
  value?: unknown;
  /** Writer-side logical time in ms; the primary sets it when absent. */
  ts: number;
}

/** The record in `payload`; `CorruptFrameError` when it is not UTF-8 JSON of a record's shape. */
export function decodeTrustedRecord(payload: Uint8Array): ChangeRecord {
  return trustedRecord(parsePayload(payload));
}

/** `payload` as JSON; `CorruptFrameError` when it is not UTF-8 JSON. */
export function parsePayload(payload: Uint8Array): unknown {
  try {
    return JSON.parse(decodeUtf8Strict(payload));
  } catch {
    throw new CorruptFrameError("payload is not UTF-8 JSON");
  }
}

/** A parsed payload as a record, checking only its shape. */
export function trustedRecord(parsed: unknown): ChangeRecord {
  const r = parsed as Partial<ChangeRecord> | null;
  const opOk = r?.op === "delete" || (r?.op === "put" && r.value !== undefined);
  if (
    !opOk || typeof r!.collection !== "string" || typeof r!.key !== "string" ||
    typeof r!.ts !== "number"
  ) {
    throw new CorruptFrameError("payload is not a change record");
  }
  return r as ChangeRecord;
}
