/**
 * ferry's public exports for embedding: the typed HTTP client of the v1 API (for edge apps and
 * replicas), the log frame codec, the change-record schema, and the spool.
 *
 * @example Write, then read your write at a replica
 * ```ts
 * import { FerryClient } from "./mod.ts";
 *
 * const primary = new FerryClient("http://127.0.0.1:8787", { token: Deno.env.get("FERRY_TOKEN") });
 * const written = await primary.write([{ op: "put", collection: "users", key: "u1", value: { name: "Ada" } }]);
 *
 * const replica = new FerryClient("http://127.0.0.1:8788");
 * const read = await replica.read("users", "u1", { minLsn: written.lastLsn, awaitTimeoutMs: 2000 });
 * console.log(read?.value); // { name: "Ada" }
 * ```
 *
 * @example Follow the log as raw, CRC-checked frames
 * ```ts
 * import { FerryClient } from "./mod.ts";
 *
 * const client = new FerryClient("http://127.0.0.1:8787");
 * const pull = await client.pullFrames({ replicaId: "edge-1", sinceLsn: 0, awaitTimeoutMs: 25_000 });
 * for (const frame of pull.frames) console.log(frame.lsn, new TextDecoder().decode(frame.payload));
 * ```
 *
 * @module
 */

export { FerryClient } from "./src/client/client.ts";
export { SegmentClient } from "./src/client/segments.ts";
export type { SegmentClientOptions, SegmentDownload, SegmentRef } from "./src/client/segments.ts";
export type {
  ClientOptions,
  CommitFate,
  CommitOutcomeOptions,
  CommitOutcomeResponse,
  FramePull,
  FrameStream,
  FrameStreamItem,
  ReadResponse,
  SnapshotLine,
  WriteRecord,
  WriteResponse,
} from "./src/client/types.ts";
export {
  CommitLostError,
  CommitUnknownError,
  FerryHttpError,
  StreamRefusedError,
} from "./src/core/errors.ts";
export {
  type ControlRecord,
  decodeStreamRun,
  encodeControlRecord,
} from "./src/wal/stream_codec.ts";
export {
  type DecodedFrame,
  decodeFrame,
  decodeWholeFrame,
  encodeFrameV3,
  type FrameFields,
} from "./src/wal/frame.ts";
export { type ChangeRecord, changeRecordSchema, decodeChangeRecord } from "./src/model/records.ts";
export { type AppendResult, Spool, type SpoolOptions } from "./src/wal/spool.ts";
