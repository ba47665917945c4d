/**
 * The replica's apply state machine (SPEC.md 7 and 8; reddb's LogicalChangeApplier, made strict).
 *
 * A replica is anchored at a position: 0 when it starts empty, a snapshot's `start_lsn` after a
 * (re-)bootstrap. From there every frame is judged against the last applied LSN:
 *
 * - `lsn == last + 1`: apply (the next record);
 * - `lsn == last`: idempotent when it carries the same payload hash (or none is known), divergence
 *   otherwise (fail closed: the primary's history differs from what this replica applied);
 * - `lsn < last`: skipped (already applied);
 * - `lsn > last + 1`: gap (fail closed: records would be missing).
 *
 * Unlike reddb, an empty replica does not adopt whatever LSN arrives first: that would silently
 * skip history. A term older than the last applied one is fenced (fail closed); a newer term is
 * adopted. Pure: no I/O, no clock.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { CorruptFrameError } from "../core/errors.ts";
import { type ChangeRecord, decodeChangeRecord } from "../model/records.ts";
import type { DecodedFrame } from "../wal/frame.ts";

/** Where the replica stands: what it applied last. */
export interface ApplierPosition {
  lastLsn: number;
  lastTerm: number;
  /** Hash of the last applied frame; null when unknown (fresh, or right after a snapshot). */
  lastHash: string | null;
}

/** A record to apply, with the position it leads to. */
export interface PlannedApply {
  lsn: number;
  term: number;
  hash: string;
  record: ChangeRecord;
}

/** Why applying stopped (each fails closed until a re-bootstrap or an operator acts). */
export type ApplyStop =
  | { kind: "gap"; expectedLsn: number; gotLsn: number }
  | { kind: "divergence"; lsn: number; appliedHash: string; receivedHash: string }
  | { kind: "stale_term"; lsn: number; term: number; appliedTerm: number }
  | { kind: "bad_record"; lsn: number; reason: string };

/** What a stop means for the replica: the state it fails closed in, why, and what it counts. */
export function stopOutcome(stop: ApplyStop): {
  state: "gap" | "divergence" | "stale_term" | "apply_error";
  error: string;
  counts: "divergence" | "apply_error" | "nothing";
} {
  switch (stop.kind) {
    case "divergence":
      return {
        state: "divergence",
        error: `LSN ${stop.lsn} differs from what this replica applied`,
        counts: "divergence",
      };
    case "stale_term":
      return {
        state: "stale_term",
        error: `frame ${stop.lsn} has term ${stop.term}, older than ${stop.appliedTerm}`,
        counts: "nothing",
      };
    case "gap":
      return {
        state: "gap",
        error: `expected LSN ${stop.expectedLsn}, got ${stop.gotLsn}`,
        counts: "apply_error",
      };
    case "bad_record":
      return {
        state: "apply_error",
        error: `record ${stop.lsn}: ${stop.reason}`,
        counts: "apply_error",
      };
  }
}

/** The plan for one pulled batch: what to apply, what was already there, and where it stopped. */
export interface ApplyPlan {
  applies: PlannedApply[];
  idempotent: number;
  skipped: number;
  stop: ApplyStop | undefined;
  /** The position after the applies. */
  position: ApplierPosition;
}

const _LSN_BYTES = 8;

/** SHA-256 (hex) over term and LSN (u64 little-endian) and the payload: a frame's identity. */
export function frameHash(frame: Pick<DecodedFrame, "term" | "lsn" | "payload">): string {
  const header = new Uint8Array(2 * _LSN_BYTES);
  const view = new DataView(header.buffer);
  view.setBigUint64(0, BigInt(frame.term), true);
  view.setBigUint64(_LSN_BYTES, BigInt(frame.lsn), true);
  return createHash("sha256").update(header).update(frame.payload).digest("hex");
}

/**
 * Judges `frames` (in order) from `position` and returns what to apply. Stops at the first frame
 * that fails closed; the frames before it are still applied.
 */
export function planApply(position: ApplierPosition, frames: readonly DecodedFrame[]): ApplyPlan {
  const plan: ApplyPlan = {
    applies: [],
    idempotent: 0,
    skipped: 0,
    stop: undefined,
    position: { ...position },
  };
  for (const frame of frames) {
    const current = plan.position;
    if (frame.term < current.lastTerm) {
      plan.stop = {
        kind: "stale_term",
        lsn: frame.lsn,
        term: frame.term,
        appliedTerm: current.lastTerm,
      };
      break;
    }
    if (frame.lsn < current.lastLsn) {
      plan.skipped += 1;
      continue;
    }
    if (frame.lsn === current.lastLsn) {
      const receivedHash = frameHash(frame);
      if (current.lastHash === null || current.lastHash === receivedHash) {
        plan.idempotent += 1;
        continue;
      }
      plan.stop = {
        kind: "divergence",
        lsn: frame.lsn,
        appliedHash: current.lastHash,
        receivedHash,
      };
      break;
    }
    if (frame.lsn > current.lastLsn + 1) {
      plan.stop = { kind: "gap", expectedLsn: current.lastLsn + 1, gotLsn: frame.lsn };
      break;
    }
    let record: ChangeRecord;
    try {
      record = decodeChangeRecord(frame.payload);
    } catch (error) {
      plan.stop = {
        kind: "bad_record",
        lsn: frame.lsn,
        reason: (error as CorruptFrameError).message,
      };
      break;
    }
    const hash = frameHash(frame);
    plan.applies.push({ lsn: frame.lsn, term: frame.term, hash, record });
    plan.position = {
      lastLsn: frame.lsn,
      lastTerm: Math.max(current.lastTerm, frame.term),
      lastHash: hash,
    };
  }
  return plan;
}
