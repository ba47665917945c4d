/**
 * Change records (SPEC.md section 1): the payload of every log frame, compact UTF-8 JSON.
 *
 * One zod schema serves the write route (validation and `/openapi.json`) and the replica (checking
 * a pulled payload). Nesting depth is checked iteratively before anything recursive touches a
 * value, so hostile nesting is a 400, never a stack overflow.
 *
 * @module
 */

// The zod of @hono/zod-openapi (zod with `.openapi()`), so route schemas can embed this one.
import { z } from "@hono/zod-openapi";
import { BadRequestError, CorruptFrameError } from "../core/errors.ts";
import { utf8Length } from "../core/bytes.ts";
import {
  COLLECTION_BYTES_MAX,
  JSON_DEPTH_MAX,
  KEY_BYTES_MAX,
  U64_SAFE_MAX,
} from "../core/limits.ts";
import { COLLECTION_PATTERN } from "./ids.ts";
import { type ChangeRecord, parsePayload, trustedRecord } from "./trusted_record.ts";

const _utf8 = new TextEncoder();

export type { ChangeRecord } from "./trusted_record.ts";

/** The record schema: strict (unknown fields are refused), put needs `value`, delete forbids it. */
export const changeRecordSchema = z
  .object({
    op: z.enum(["put", "delete"]),
    collection: z.string().regex(COLLECTION_PATTERN, {
      message: `collection must be 1..${COLLECTION_BYTES_MAX} characters of [A-Za-z0-9_.-]`,
    }),
    // NUL is refused: Deno KV escapes it, so 1024 NULs would not fit a KV key.
    key: z.string().min(1).refine((key) => key.isWellFormed() && !key.includes("\u0000"), {
      message: "key must be well-formed Unicode without NUL",
    }).refine((key) => _utf8.encode(key).byteLength <= KEY_BYTES_MAX, {
      message: `key must be at most ${KEY_BYTES_MAX} bytes of UTF-8`,
    }),
    // Values come out of JSON.parse, so any value is JSON; z.json() would recurse in the OpenAPI doc.
    value: z.unknown().describe("any JSON value; required for put, absent for delete").optional(),
    ts: z.number().int().min(0).max(U64_SAFE_MAX).optional(),
  })
  .strict()
  .superRefine((record, ctx) => {
    if (record.op === "put" && record.value === undefined) {
      ctx.addIssue({ code: "custom", path: ["value"], message: "a put needs a value" });
    }
    if (record.op === "delete" && record.value !== undefined) {
      ctx.addIssue({ code: "custom", path: ["value"], message: "a delete has no value" });
    }
  });

/**
 * True when `value` nests at most `maxDepth` arrays/objects deep (checked without recursion): a
 * bare array or object is one level. Strings with lone surrogates anywhere are refused too: they
 * cannot round-trip through UTF-8. So are numbers JSON.parse made infinite (`1e400`):
 * JSON.stringify would store them as `null`.
 */
export function jsonShapeWithin(value: unknown, maxDepth = JSON_DEPTH_MAX): boolean {
  if (typeof value === "string") return value.isWellFormed();
  if (typeof value === "number") return Number.isFinite(value);
  if (typeof value !== "object" || value === null) return true;
  // Two parallel stacks instead of a [value, depth] pair per node: no allocation per node.
  const values: object[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const current = values.pop()!;
    const depth = depths.pop()!;
    if (depth >= maxDepth) return false;
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) {
        if (!_leafWithin(current[i], values, depths, depth + 1)) return false;
      }
    } else {
      const object = current as Record<string, unknown>;
      for (const key in object) {
        if (!key.isWellFormed() || !_leafWithin(object[key], values, depths, depth + 1)) {
          return false;
        }
      }
    }
  }
  return true;
}

/** Checks a leaf at once; pushes a container (at `depth`) for the loop of `jsonShapeWithin`. */
function _leafWithin(item: unknown, values: object[], depths: number[], depth: number): boolean {
  if (typeof item === "string") return item.isWellFormed();
  if (typeof item === "number") return Number.isFinite(item);
  if (typeof item === "object" && item !== null) {
    values.push(item);
    depths.push(depth);
  }
  return true;
}

/** Encodes a record as compact UTF-8 JSON with a fixed field order. */
export function encodeChangeRecord(record: ChangeRecord): Uint8Array {
  return _utf8.encode(_recordJson(record));
}

/** The compact JSON text of a record, fields in the fixed order (no intermediate object). */
function _recordJson(record: ChangeRecord): string {
  const head = `{"op":"${record.op}","collection":${JSON.stringify(record.collection)},"key":${
    JSON.stringify(record.key)
  }`;
  return record.op === "put"
    ? `${head},"value":${JSON.stringify(record.value)},"ts":${record.ts}}`
    : `${head},"ts":${record.ts}}`;
}

/**
 * Encodes many records with one UTF-8 encoding of their joined text and returns a view per record
 * (one native call per request instead of one per record). The same bytes as `encodeChangeRecord`.
 */
export function encodeChangeRecords(records: readonly ChangeRecord[]): Uint8Array[] {
  const texts = records.map(_recordJson);
  const joined = texts.join("");
  const bytes = _utf8.encode(joined);
  const ascii = bytes.byteLength === joined.length;
  const views: Uint8Array[] = [];
  let offset = 0;
  for (const text of texts) {
    const length = ascii ? text.length : utf8Length(text);
    views.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  return views;
}

/** Turns a validated input (ts optional) into a record, stamping `ts` with `nowMs` when absent. */
export function stampRecord(
  input: z.infer<typeof changeRecordSchema>,
  nowMs: number,
): ChangeRecord {
  const record: ChangeRecord = {
    op: input.op,
    collection: input.collection,
    key: input.key,
    ts: input.ts ?? nowMs,
  };
  if (input.op === "put") record.value = input.value;
  return record;
}

/**
 * Decodes and validates a payload pulled from the log; throws `CorruptFrameError` when it is not a
 * valid change record (a replica must not apply it). With `trusted` (the primary reading its own
 * spool, whose every record was validated before it was written) only the shape is checked.
 */
export function decodeChangeRecord(
  payload: Uint8Array,
  options: { trusted?: boolean } = {},
): ChangeRecord {
  const parsed = parsePayload(payload);
  if (options.trusted) return trustedRecord(parsed);
  if (!jsonShapeWithin(parsed, JSON_DEPTH_MAX + 1)) {
    throw new CorruptFrameError("payload nests too deep");
  }
  const result = changeRecordSchema.safeParse(parsed);
  if (!result.success || result.data.ts === undefined) {
    throw new CorruptFrameError(
      `payload is not a change record: ${result.error?.issues[0]?.message ?? "no ts"}`,
    );
  }
  return stampRecord(result.data, result.data.ts);
}

/**
 * Throws `BadRequestError` unless `body` nests within the JSON depth limit. A write body holds its
 * values three levels down (body, `records`, record): the same {@link JSON_DEPTH_MAX} levels a
 * replica allows in a value (`decodeChangeRecord`), no more.
 */
export function assertJsonShape(body: unknown): void {
  if (!jsonShapeWithin(body, JSON_DEPTH_MAX + 3)) {
    throw new BadRequestError(
      `the JSON nests deeper than ${JSON_DEPTH_MAX} levels in a value, or holds a string that is not well-formed Unicode or a number beyond the range of a double (like 1e400)`,
    );
  }
}
