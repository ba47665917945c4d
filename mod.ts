/**
 * ferry's public exports for embedding: the log frame codec and the spool.
 *
 * @example
 * ```ts
 * import { decodeWholeFrame } from "./mod.ts";
 * ```
 *
 * @module
 */

export {
  type DecodedFrame,
  decodeFrame,
  decodeWholeFrame,
  encodeFrameV3,
  type FrameFields,
} from "./src/wal/frame.ts";
export { type AppendResult, Spool, type SpoolOptions } from "./src/wal/spool.ts";
