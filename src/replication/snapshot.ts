/**
 * Snapshots (SPEC.md 8 and 9.4): a streamed, fuzzy copy of the materialised state as NDJSON.
 *
 * Before the first byte, the caller's slot is (re)created at `start_lsn` (the state's applied LSN),
 * pinning the WAL it will replay. A resumed snapshot (`after=`) keeps that pin and continues strictly
 * after the given entry; the entries of all parts together equal one uncut snapshot. The trailer
 * carries a CRC-32 over the entry lines (each with its "\n") of its own response. At most
 * `concurrencyMax` snapshots stream at once; beyond that `SnapshotBusyError` (503, Retry-After).
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { RebootstrapRequiredError, SnapshotBusyError } from "../core/errors.ts";
import { SNAPSHOT_CHUNK_BYTES, SNAPSHOT_PAGE_ENTRIES } from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { isLive } from "../slots/slot.ts";
import type { Primary } from "./primary.ts";
import type { StateApplier } from "../state/applier.ts";
import { SNAPSHOT_FORMAT, snapshotEntryLine } from "../model/wire.ts";
import { concatBytes } from "../core/bytes.ts";

const _utf8 = new TextEncoder();

/** Serves snapshot streams with bounded concurrency. */
export class SnapshotServer {
  #primary: Primary;
  #state: StateApplier;
  #concurrencyMax: number;
  #logger: Logger;
  #active = 0;

  constructor(
    primary: Primary,
    state: StateApplier,
    options: { concurrencyMax: number; logger?: Logger },
  ) {
    this.#primary = primary;
    this.#state = state;
    this.#concurrencyMax = options.concurrencyMax;
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
  ): Promise<ReadableStream<Uint8Array>> {
    if (this.#active >= this.#concurrencyMax) throw new SnapshotBusyError(this.#concurrencyMax);
    this.#active += 1;
    try {
      const startLsn = after === undefined
        ? await this.#pin(replicaId)
        : this.#existingPin(replicaId);
      this.#logger.info("snapshot.started", {
        replica_id: replicaId,
        start_lsn: startLsn,
        resumed: after !== undefined,
      });
      return this.#stream(startLsn, after);
    } catch (error) {
      this.#active -= 1;
      throw error;
    }
  }

  async #pin(replicaId: string): Promise<number> {
    const startLsn = this.#state.appliedLsn();
    await this.#primary.pinSlot(replicaId, startLsn);
    return startLsn;
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
    const primary = this.#primary;
    const state = this.#state;
    const logger = this.#logger;
    const entries = state.state.scan({
      after,
      batchSize: SNAPSHOT_PAGE_ENTRIES,
      verifyCount: after === undefined,
    })
      [Symbol.asyncIterator]();
    let crc = 0;
    let count = 0;
    let finished = false;
    const finish = () => {
      if (!finished) {
        finished = true;
        this.#active -= 1;
      }
    };
    const header = {
      type: "header",
      start_lsn: startLsn,
      term: primary.term,
      timeline: primary.timeline,
      format: SNAPSHOT_FORMAT,
    };
    return new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(_utf8.encode(JSON.stringify(header) + "\n"));
      },
      async pull(controller) {
        try {
          const lines: Uint8Array[] = [];
          let bytes = 0;
          while (bytes < SNAPSHOT_CHUNK_BYTES) {
            const next = await entries.next();
            if (next.done) {
              const trailer = { type: "trailer", end_lsn: state.appliedLsn(), count, crc32: crc };
              lines.push(_utf8.encode(JSON.stringify(trailer) + "\n"));
              controller.enqueue(concatBytes(lines));
              controller.close();
              finish();
              return;
            }
            const line = _utf8.encode(snapshotEntryLine(next.value));
            crc = crc32(line, crc);
            count += 1;
            lines.push(line);
            bytes += line.byteLength;
          }
          controller.enqueue(concatBytes(lines));
        } catch (error) {
          finish();
          logger.error("snapshot.failed", { error, entries_sent: count });
          controller.error(error);
        }
      },
      async cancel() {
        finish();
        await entries.return?.();
      },
    });
  }
}
