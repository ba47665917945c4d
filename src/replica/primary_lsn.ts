/**
 * What the replica knows of the primary's current LSN, for its status (`primary_current_lsn`).
 * Pulls and the register answer say it exactly. During a re-bootstrap nothing is pulled, so the
 * replica also learns from a 409 `rebootstrap_required` (its `oldest_lsn`: the primary has at least
 * the record before it) and from each snapshot header (`start_lsn`: the primary had applied that
 * far), which are lower bounds.
 *
 * @module
 */

/** The primary's current LSN as last learnt, and whether it was learnt since the last failure. */
export class PrimaryLsn {
  #lsn = 0;
  /** False after a failed request: the primary may have restarted since, even behind that LSN. */
  #fresh = false;

  /** The primary's current LSN, as far as this replica knows. */
  get lsn(): number {
    return this.#lsn;
  }

  /** The primary said it is at `lsn` (a pull, a register answer). */
  exact(lsn: number): void {
    this.#lsn = lsn;
    this.#fresh = true;
  }

  /**
   * The primary is at least at `lsn` (a 409's `oldest_lsn` - 1, a snapshot header's `start_lsn`):
   * it raises what was learnt since the last failure, and replaces what was learnt before it.
   */
  atLeast(lsn: number): void {
    this.#lsn = this.#fresh ? Math.max(this.#lsn, lsn) : lsn;
    this.#fresh = true;
  }

  /** A 409 `rebootstrap_required`: the primary holds at least the record before its `oldest_lsn`. */
  atLeastOfRebootstrap(body: Record<string, unknown>): void {
    const oldest = body.oldest_lsn;
    // The oldest retained LSN is at most the current LSN + 1 (it is that when nothing is retained).
    if (typeof oldest === "number" && Number.isSafeInteger(oldest) && oldest >= 1) {
      this.atLeast(oldest - 1);
    }
  }

  /** A request failed: keep showing the last value, but let the next lower bound replace it. */
  stale(): void {
    this.#fresh = false;
  }
}
