/**
 * Snapshots (SPEC.md 8 and 9.4): a streamed, fuzzy copy of the materialised state as NDJSON.
 *
 * Before the first byte, the caller's slot is (re)created at `start_lsn` (the state's applied LSN),
 * pinning the WAL it will replay. A resumed snapshot (`after=`) keeps that pin and continues strictly
 * after the given entry; the entries of all parts together equal one uncut snapshot. The trailer
 * carries a CRC-32 over the entry lines (each with its "\n") of its own response. At most
 * `concurrencyMax` snapshots stream at once; beyond that `SnapshotBusyError` (503, Retry-After).
 *
 * In a cluster (SPEC.md 13.4) a snapshot shows only committed records: the state applier is capped
 * at the commit LSN (`StateApplier`'s `applyUpTo`), so `start_lsn`, every entry and `end_lsn` are at
 * or below it; a state found ahead of the commit LSN (an uncapped applier) is refused, never sent.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { RebootstrapRequiredError, SnapshotBusyError, UnavailableError } from "../core/errors.ts";
import {
  SNAPSHOT_CHUNK_BYTES,
  SNAPSHOT_FRESH_WAIT_MS,
  SNAPSHOT_PAGE_ENTRIES,
  SNAPSHOT_STALL_TIMEOUT_MS_DEFAULT,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { isLive } from "../slots/slot.ts";
import type { Primary } from "./primary.ts";
import type { StateApplier } from "../state/applier.ts";
import { SNAPSHOT_FORMAT, snapshotEntryLine } from "../model/wire.ts";
import { concatBytes } from "../core/bytes.ts";
import { type StateEntry } from "../state/kv_state.ts";

const _utf8 = new TextEncoder();

/** An opened snapshot: its NDJSON body, its start, and how many entries the state held then. */
export interface SnapshotOpened {
  body: ReadableStream<Uint8Array>;
  startLsn: number;
  /** A hint for progress (the snapshot is fuzzy): `x-ferry-snapshot-entries`. */
  entries: number;
}

/** Serves snapshot streams with bounded concurrency. */
export class SnapshotServer {
  #primary: Primary;
  #state: StateApplier;
  #concurrencyMax: number;
  #stallTimeoutMs: number;
  #logger: Logger;
  #active = 0;

  constructor(
    primary: Primary,
    state: StateApplier,
    options: { concurrencyMax: number; stallTimeoutMs?: number; logger?: Logger },
  ) {
    this.#primary = primary;
    this.#state = state;
    this.#concurrencyMax = options.concurrencyMax;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? SNAPSHOT_STALL_TIMEOUT_MS_DEFAULT;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Snapshots streaming now. */
  get active(): number {
    return this.#active;
  }

  /**
   * Pins the slot (or checks the existing pin when resuming) and returns the NDJSON stream. A
   * resume whose slot is gone or invalidated is a `RebootstrapRequiredError`: start over.
   */
  async open(
    replicaId: string,
    after?: { collection: string; key: string },
  ): Promise<SnapshotOpened> {
    if (this.#active >= this.#concurrencyMax) throw new SnapshotBusyError(this.#concurrencyMax);
    this.#active += 1;
    try {
      const startLsn = after === undefined
        ? await this.#pin(replicaId)
        : this.#existingPin(replicaId);
      // The entry count when it starts: a hint for the replica's progress, not a promise (fuzzy).
      const entries = (await this.#state.state.meta()).entries ?? 0;
      this.#logger.info("snapshot.started", {
        replica_id: replicaId,
        start_lsn: startLsn,
        entries,
        resumed: after !== undefined,
      });
      return { body: this.#stream(startLsn, after), startLsn, entries };
    } catch (error) {
      this.#active -= 1;
      throw error;
    }
  }

  async #pin(replicaId: string): Promise<number> {
    await this.#fresh();
    const startLsn = this.#state.appliedLsn();
    const commitLsn = this.#primary.streams.commitLsn();
    if (startLsn > commitLsn) {
      throw new UnavailableError("the state is ahead of the commit LSN; no snapshot can start", {
        applied_lsn: startLsn,
        commit_lsn: commitLsn,
      });
    }
    await this.#primary.pinSlot(replicaId, startLsn);
    return startLsn;
  }

  /**
   * Lets the state apply what it may now (its rests and lingers end for a waiter) for up to
   * `SNAPSHOT_FRESH_WAIT_MS`, so the snapshot starts near the head: a start far behind it gave
   * the replica's new slot a lag past the cap, and the slot was invalidated before the replica
   * could replay (re-bootstrap after re-bootstrap). Past the wait it starts where the state is.
   */
  async #fresh(): Promise<void> {
    const target = this.#state.applicableLsn();
    if (this.#state.appliedLsn() >= target) return;
    await this.#state.waitApplied(target, { timeoutMs: SNAPSHOT_FRESH_WAIT_MS });
  }

  #existingPin(replicaId: string): number {
    const slot = this.#primary.slots.get(replicaId);
    if (!slot || !isLive(slot)) {
      // The pin was lost (dropped, or invalidated while the snapshot was cut): start over.
      throw new RebootstrapRequiredError(slot?.invalidationReason ?? "slot-missing", {
        oldest_lsn: this.#primary.spool.oldestLsn(),
        message: "the snapshot's slot pin is gone; start the snapshot again without after=",
      });
    }
    return slot.restartLsn;
  }

  #stream(
    startLsn: number,
    after: { collection: string; key: string } | undefined,
  ): ReadableStream<Uint8Array> {
    const state = this.#state;
    const header = {
      type: "header",
      start_lsn: startLsn,
      term: this.#primary.term,
      timeline: this.#primary.timeline,
      format: SNAPSHOT_FORMAT,
    };
    const entries = state.state.scan({
      after,
      batchSize: SNAPSHOT_PAGE_ENTRIES,
      verifyCount: after === undefined,
    })[Symbol.asyncIterator]();
    return _snapshotStream({
      header,
      entries,
      endLsn: () => state.appliedLsn(),
      stallTimeoutMs: this.#stallTimeoutMs,
      logger: this.#logger,
      onEnd: () => (this.#active -= 1),
    });
  }
}

/**
 * The NDJSON stream of one snapshot response: the header, entry lines in chunks of about
 * `SNAPSHOT_CHUNK_BYTES` as the reader takes them, then the trailer with the count and CRC-32 of
 * the entry lines. A reader that takes nothing for `stallTimeoutMs` ends the stream, so a stalled
 * client cannot hold a snapshot place (and the KV listing) for ever; `onEnd` runs once however the
 * stream ends.
 */
function _snapshotStream(source: {
  header: Record<string, unknown>;
  entries: AsyncIterator<StateEntry>;
  endLsn: () => number;
  stallTimeoutMs: number;
  logger: Logger;
  onEnd: () => void;
}): ReadableStream<Uint8Array> {
  const { entries, logger } = source;
  let crc = 0;
  let count = 0;
  let ended = false;
  let stallTimer: ReturnType<typeof setTimeout> | undefined;
  const end = () => {
    clearTimeout(stallTimer);
    if (!ended) {
      ended = true;
      source.onEnd();
    }
  };
  const armStallTimer = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    clearTimeout(stallTimer);
    stallTimer = setTimeout(() => {
      end();
      logger.warn("snapshot.stalled", { entries_sent: count, stall_ms: source.stallTimeoutMs });
      controller.error(new UnavailableError("the snapshot reader stalled; the stream ended"));
      void entries.return?.();
    }, source.stallTimeoutMs);
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(_utf8.encode(JSON.stringify(source.header) + "\n"));
      armStallTimer(controller);
    },
    async pull(controller) {
      clearTimeout(stallTimer);
      try {
        const lines: Uint8Array[] = [];
        let bytes = 0;
        while (bytes < SNAPSHOT_CHUNK_BYTES) {
          const next = await entries.next();
          if (next.done) {
            const trailer = { type: "trailer", end_lsn: source.endLsn(), count, crc32: crc };
            lines.push(_utf8.encode(JSON.stringify(trailer) + "\n"));
            controller.enqueue(concatBytes(lines));
            controller.close();
            end();
            return;
          }
          const line = _utf8.encode(snapshotEntryLine(next.value));
          crc = crc32(line, crc);
          count += 1;
          lines.push(line);
          bytes += line.byteLength;
        }
        controller.enqueue(concatBytes(lines));
        armStallTimer(controller);
      } catch (error) {
        end();
        logger.error("snapshot.failed", { error, entries_sent: count });
        controller.error(error);
      }
    },
    async cancel() {
      end();
      await entries.return?.();
    },
  });
}
