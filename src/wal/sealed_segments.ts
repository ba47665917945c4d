/**
 * Sealed segments as immutable objects (SPEC.md 13.2): the listing of a timeline's sealed segments
 * with the SHA-256 of each (computed once: when it was sealed, or by the verifying scan that
 * rebuilds a missing sidecar; never per request), the lookup of one by its content-addressed name,
 * and a bounded, streamed read of its bytes as stored. A segment is listed only once it is sealed:
 * every byte fdatasynced by its group commits, its sidecar written, and appends gone elsewhere.
 *
 * @module
 */

import { NotFoundError, WalCorruptionError, WalRemovedError } from "../core/errors.ts";
import type { FileHandle } from "../core/files.ts";
import { SEGMENT_SERVE_CHUNK_BYTES } from "../core/limits.ts";
import type { Segment } from "./segment.ts";
import type { SegmentSet } from "./segment_set.ts";

/** One sealed segment as an object: its LSN range, size and digest. */
export interface SealedSegmentInfo {
  firstLsn: number;
  lastLsn: number;
  sizeBytes: number;
  /** SHA-256 of the file's bytes, 64 lowercase hex digits. */
  sha256: string;
}

/** A sealed segment opened for reading: its file stays readable even if a prune removes it. */
export interface SealedSegmentReader {
  info: SealedSegmentInfo;
  /**
   * Bytes `start` (inclusive) to `end` (exclusive) as a stream read `SEGMENT_SERVE_CHUNK_BYTES` at
   * a time, only as fast as it is consumed; `onChunk` counts what was handed on. The file closes
   * when the stream ends, fails or is cancelled.
   */
  stream(range: { start: number; end: number }, onChunk?: (bytes: number) => void): ReadableStream<
    Uint8Array
  >;
  /** Closes the file without streaming (an answer that sends no body). */
  close(): void;
}

/** The sealed segments of one spool. */
export class SealedSegments {
  #files: SegmentSet;
  #onCorruption: (error: WalCorruptionError) => void;

  /** `onCorruption` reports a segment that fails verification (the spool logs it once). */
  constructor(files: SegmentSet, onCorruption: (error: WalCorruptionError) => void) {
    this.#files = files;
    this.#onCorruption = onCorruption;
  }

  /**
   * The sealed segments, oldest first, each with its digest (loaded on first use from its sidecar,
   * or by a verifying scan). The listing stops before a segment that fails verification (it is
   * reported): what follows it cannot be reached through segments. Needs read access.
   */
  async list(): Promise<SealedSegmentInfo[]> {
    const { fs, segments } = this.#files.sealed();
    const infos: SealedSegmentInfo[] = [];
    for (const segment of segments) {
      if (segment.lastLsn < segment.firstLsn) continue;
      let sha256: string;
      try {
        sha256 = await segment.ensureDigest(fs);
      } catch (error) {
        // Pruned meanwhile: it is gone from the listing too.
        if (error instanceof Deno.errors.NotFound) continue;
        if (!(error instanceof WalCorruptionError)) throw error;
        this.#onCorruption(error);
        break;
      }
      infos.push(_infoOf(segment, sha256));
    }
    return infos;
  }

  /**
   * The sealed segment named `first-last-hash` (`hash`: the first hex digits of its SHA-256).
   * Throws `WalRemovedError` when its records were pruned, `NotFoundError` when no sealed segment
   * has that name (an unknown one, or the active segment), `WalCorruptionError` when it fails
   * verification. Needs read access.
   */
  async find(
    name: { firstLsn: number; lastLsn: number; hash: string },
  ): Promise<SealedSegmentInfo> {
    const { fs, segments, active } = this.#files.sealed();
    const segment = segments.find((s) => s.firstLsn === name.firstLsn);
    if (segment === undefined) {
      const oldest = this.#files.oldestLsn();
      if (name.lastLsn < oldest && name.firstLsn !== active.firstLsn) {
        throw new WalRemovedError(name.firstLsn - 1, oldest);
      }
      throw _notFound(name, name.firstLsn === active.firstLsn ? "is not sealed yet" : "is unknown");
    }
    let sha256: string;
    try {
      sha256 = await segment.ensureDigest(fs);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new WalRemovedError(name.firstLsn - 1, this.#files.oldestLsn());
      }
      if (error instanceof WalCorruptionError) this.#onCorruption(error);
      throw error;
    }
    if (segment.lastLsn !== name.lastLsn || !sha256.startsWith(name.hash)) {
      throw _notFound(name, "does not name a sealed segment's bytes");
    }
    return _infoOf(segment, sha256);
  }

  /**
   * Finds the segment (`find`) and opens its file. A prune after this does not cut the read short
   * (the open file keeps its bytes); one before it is `WalRemovedError`. Needs read access.
   */
  async open(name: { firstLsn: number; lastLsn: number; hash: string }): Promise<
    SealedSegmentReader
  > {
    const info = await this.find(name);
    const segment = this.#files.sealed().segments.find((s) => s.firstLsn === info.firstLsn);
    let file: FileHandle;
    try {
      if (segment === undefined) throw new Deno.errors.NotFound("pruned");
      file = await this.#files.sealed().fs.open(segment.path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      throw new WalRemovedError(name.firstLsn - 1, this.#files.oldestLsn());
    }
    return {
      info,
      stream: (range, onChunk) => _fileStream(file, { ...range, path: segment.path }, onChunk),
      close: () => file.close(),
    };
  }
}

function _infoOf(segment: Segment, sha256: string): SealedSegmentInfo {
  return {
    firstLsn: segment.firstLsn,
    lastLsn: segment.lastLsn,
    sizeBytes: segment.sizeBytes,
    sha256,
  };
}

function _notFound(name: { firstLsn: number; lastLsn: number; hash: string }, why: string) {
  return new NotFoundError(
    `segment ${name.firstLsn}-${name.lastLsn}-${name.hash} ${why}`,
    { first_lsn: name.firstLsn, last_lsn: name.lastLsn },
  );
}

/**
 * A pull-driven stream of `file` from `start` to `end`: one read of at most
 * `SEGMENT_SERVE_CHUNK_BYTES` per chunk the consumer asks for (nothing read ahead), so a request
 * holds one chunk at a time, whatever the size of the segment. Closes `file` once done.
 */
function _fileStream(
  file: FileHandle,
  range: { start: number; end: number; path: string },
  onChunk?: (bytes: number) => void,
): ReadableStream<Uint8Array> {
  let position = range.start;
  let open = true;
  const close = () => {
    if (open) file.close();
    open = false;
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (position >= range.end) {
        close();
        controller.close();
      }
    },
    async pull(controller) {
      const length = Math.min(SEGMENT_SERVE_CHUNK_BYTES, range.end - position);
      const chunk = new Uint8Array(length);
      try {
        const got = await file.readAt(chunk, position);
        if (got < length) {
          throw new WalCorruptionError(`segment ${range.path} is shorter than its sealed size`, {
            path: range.path,
            offset: position + got,
          });
        }
      } catch (error) {
        close();
        controller.error(error);
        return;
      }
      position += length;
      onChunk?.(length);
      controller.enqueue(chunk);
      if (position >= range.end) {
        close();
        controller.close();
      }
    },
    cancel() {
      close();
    },
  }, { highWaterMark: 0 });
}
