/**
 * Applying a run of spool frames to the materialised state: each payload decoded as a change
 * record the primary wrote itself, the records applied in order, the meta stamped with each
 * commit's last LSN and its term. The same code runs in the apply worker and, where the worker
 * cannot run, in the primary's own thread (`state_writer.ts`), so both leave the same state.
 *
 * @module
 */

import { CorruptFrameError } from "../core/errors.ts";
import { type ChangeRecord, decodeTrustedRecord } from "../model/trusted_record.ts";
import type { KvState } from "./kv_state.ts";
import type { StateMeta } from "./kv_layout.ts";

/** What the state needs of a frame: its position and its payload. */
export interface ApplyFrame {
  lsn: number;
  term: number;
  payload: Uint8Array;
}

/** A frame whose payload was not a change record (a legacy frame): passed over, and why. */
export interface SkippedRecord {
  lsn: number;
  reason: string;
}

/**
 * Applies `frames` (consecutive LSNs, rising) to `state`; `onCommitted(lsn)` after each commit is
 * visible. Frames that hold no change record count as applied and are returned, not thrown.
 */
export async function applyFrames(
  state: KvState,
  frames: readonly ApplyFrame[],
  onCommitted: (lsn: number) => void,
): Promise<SkippedRecord[]> {
  if (frames.length === 0) return [];
  const skipped: SkippedRecord[] = [];
  const records: Array<{ lsn: number; record: ChangeRecord }> = [];
  for (const frame of frames) {
    try {
      records.push({ lsn: frame.lsn, record: decodeTrustedRecord(frame.payload) });
    } catch (error) {
      if (!(error instanceof CorruptFrameError)) throw error;
      skipped.push({ lsn: frame.lsn, reason: error.message });
    }
  }
  const first = frames[0]!;
  const last = frames[frames.length - 1]!;
  // Frames come in LSN order without gaps: the term of `lsn` is at its offset from the first.
  const termOf = (lsn: number) => frames[lsn - first.lsn]?.term ?? last.term;
  const meta = (lsn: number): StateMeta => ({
    applied_lsn: lsn,
    last_term: termOf(lsn),
    last_hash: null,
  });
  // Each commit is visible when it lands: readers and retention need not wait for the batch.
  await state.apply(records, meta, { onCommitted });
  // Skipped records at the end of the batch still count as applied.
  if (records[records.length - 1]?.lsn !== last.lsn) await state.setMeta(meta(last.lsn));
  onCommitted(last.lsn);
  return skipped;
}
