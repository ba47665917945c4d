/**
 * Resume planning's rules and counters (SPEC.md section 7): whether the spool can still serve the
 * records after a position, and how many reconnects resumed from the log (partial) or were told
 * to load a snapshot (full, each 409 served).
 *
 * @module
 */

import { RebootstrapRequiredError } from "../core/errors.ts";
import type { Spool } from "../wal/spool.ts";
import type { RegisteredReplica } from "./registry.ts";

/** Full and partial resyncs since start. */
export class ResyncCounters {
  #spool: Spool;
  #full = 0;
  #partial = 0;

  constructor(spool: Spool) {
    this.#spool = spool;
  }

  get fullResyncTotal(): number {
    return this.#full;
  }

  get partialResyncTotal(): number {
    return this.#partial;
  }

  /** The 409 that sends a replica to a snapshot, counted as a full resync. */
  rebootstrap(reason: string, message?: string): RebootstrapRequiredError {
    this.#full += 1;
    return new RebootstrapRequiredError(reason, { oldest_lsn: this.#spool.oldestLsn(), message });
  }

  /** Throws (a full resync) when the records after `startLsn` cannot be served from the spool. */
  assertServable(startLsn: number): void {
    const current = this.#spool.currentLsn();
    if (startLsn > current) {
      throw this.rebootstrap(
        "replica-ahead",
        `position ${startLsn} is ahead of the primary's current LSN ${current}; the replica must re-bootstrap`,
      );
    }
    const oldest = this.#spool.oldestLsn();
    if (oldest > startLsn + 1) {
      throw this.rebootstrap(
        "wal-removed",
        `records after LSN ${startLsn} were pruned (oldest retained: ${oldest}); load a snapshot`,
      );
    }
  }

  /** A served pull: the first after a register or after the replica was unhealthy is partial. */
  noteServed(replica: RegisteredReplica): void {
    if (!replica.resumePending) return;
    replica.resumePending = false;
    this.#partial += 1;
  }
}
