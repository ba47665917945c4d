/**
 * The replica's first phase after it registers (SPEC.md 13.2): catch up through the sealed segments
 * it lacks, each downloaded whole (from the primary, or a cache or CDN in front of it:
 * `--segments-url`), checked before any of it is applied (length, SHA-256, every CRC in one pass,
 * its LSN range: `SegmentClient`), then applied through the apply plan in pull-sized slices, each
 * acknowledged. The pull (or stream) loop takes over for the rest.
 *
 * Registering first pins the replica's WAL, so the listed segments stay while they are fetched. A
 * segment that fails its checks is not applied: the phase ends with `corrupt` and the runtime fails
 * closed (`apply_error`) as it does for a damaged pull. A segment that cannot be had (410 pruned,
 * 404, a cache that is down, a listing the primary does not serve) ends the phase early: the pulls
 * go on from where it stopped, and they re-bootstrap when the records are gone, as always.
 *
 * @module
 */

import { FerryHttpError, FerryResponseError } from "../core/errors.ts";
import { REPLICA_PULL_RECORDS } from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import type { SegmentClient, SegmentRef } from "../client/segments.ts";
import type { KvState } from "../state/kv_state.ts";
import type { DecodedFrame } from "../wal/frame.ts";
import { type ApplierPosition, type ApplyStop, planApply } from "./apply_plan.ts";
import { applyToStore } from "./apply_store.ts";

/** What the phase needs from the runtime. */
export interface SegmentCatchupDeps {
  segments: SegmentClient;
  /** The store to apply into (the runtime's current one). */
  store: KvState;
  /** The timeline registration answered: a listing of another one is not used. */
  timeline: number;
  signal: AbortSignal;
  logger: Logger;
  /** Called after each applied slice with the new position and the records it applied. */
  applied: (position: ApplierPosition, records: number) => Promise<void>;
}

/** How the phase ended. */
export type SegmentCatchupEnd =
  /** Caught up through every listed segment it lacked, or stopped early to let pulls go on. */
  | { kind: "done"; segments: number; bytes: number }
  /** A segment failed its checks: nothing of it was applied. */
  | { kind: "corrupt"; reason: string }
  /** The apply plan stopped (gap, divergence, stale term, a bad record), as a pull's would. */
  | { kind: "stop"; stop: ApplyStop };

/**
 * Catches up from `position` through the sealed segments it lacks. Throws only what listing on the
 * primary throws past its answers (the `TypeError` of an unreachable primary) and store errors.
 */
export async function catchUpFromSegments(
  position: ApplierPosition,
  deps: SegmentCatchupDeps,
): Promise<SegmentCatchupEnd> {
  const wanted = await _wantedSegments(position, deps);
  const started = performance.now();
  let current = position;
  let bytes = 0;
  let count = 0;
  for (const ref of wanted) {
    if (ref.firstLsn > current.lastLsn + 1) break;
    const download = await _download(ref, deps);
    if (download === undefined) break;
    if (download.corrupt) {
      return { kind: "corrupt", reason: `segment ${ref.url}: ${download.corrupt.reason}` };
    }
    const applied = await _applySegment(current, download.frames, deps);
    current = applied.position;
    bytes += ref.bytes;
    count += 1;
    if (applied.stop) return { kind: "stop", stop: applied.stop };
  }
  if (count > 0) {
    deps.logger.info("replica.segments_caught_up", {
      segments: count,
      bytes,
      applied_lsn: current.lastLsn,
      ms: Math.round(performance.now() - started),
    });
  }
  return { kind: "done", segments: count, bytes };
}

/** The listed segments holding records after `position`, oldest first; none when not listed. */
async function _wantedSegments(
  position: ApplierPosition,
  deps: SegmentCatchupDeps,
): Promise<SegmentRef[]> {
  let listed;
  try {
    listed = await deps.segments.list(deps.signal);
  } catch (error) {
    if (!(error instanceof FerryHttpError) && !(error instanceof FerryResponseError)) throw error;
    deps.logger.warn("replica.segments_skipped", { reason: error.message });
    return [];
  }
  if (listed.timeline !== deps.timeline) {
    const reason = `the listing is of timeline ${listed.timeline}, not ${deps.timeline}`;
    deps.logger.warn("replica.segments_skipped", { reason });
    return [];
  }
  return listed.segments.filter((ref) => ref.lastLsn > position.lastLsn);
}

/**
 * Downloads and checks one segment; undefined when it cannot be had (an error answer, a cache
 * that cannot be reached): the pulls go on from here.
 */
async function _download(ref: SegmentRef, deps: SegmentCatchupDeps) {
  try {
    return await deps.segments.download(ref, deps.signal);
  } catch (error) {
    if (deps.signal.aborted) throw error;
    deps.logger.warn("replica.segment_unavailable", {
      url: ref.url,
      first_lsn: ref.firstLsn,
      reason: (error as Error).message,
    });
    return undefined;
  }
}

/** Applies a checked segment's frames through the apply plan, a pull's worth at a time. */
async function _applySegment(
  position: ApplierPosition,
  frames: readonly DecodedFrame[],
  deps: SegmentCatchupDeps,
): Promise<{ position: ApplierPosition; stop?: ApplyStop }> {
  let current = position;
  for (let at = 0; at < frames.length; at += REPLICA_PULL_RECORDS) {
    const plan = planApply(current, frames.slice(at, at + REPLICA_PULL_RECORDS));
    if (plan.applies.length > 0) {
      await applyToStore(deps.store, plan);
      current = plan.position;
      await deps.applied(current, plan.applies.length);
    }
    if (plan.stop) return { position: current, stop: plan.stop };
  }
  return { position: current };
}
