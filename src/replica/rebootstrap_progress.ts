/**
 * How far a re-bootstrap got (SPEC.md 13.5): entries and bytes loaded, the total when the primary
 * said it (`x-ferry-snapshot-entries`, a hint: the snapshot is fuzzy), and an ETA from the rate so
 * far. Shown in the replica's status and page, and logged every `REPLICA_PROGRESS_LOG_MS`.
 *
 * @module
 */

import { REPLICA_PROGRESS_LOG_MS } from "../core/limits.ts";
import type { Logger } from "../core/log.ts";

/** The `rebootstrap` object of a replica's status. */
export interface RebootstrapView {
  entries_loaded: number;
  entries_total?: number;
  bytes_loaded: number;
  started_at_unix_ms: number;
  /** Seconds to go at the rate so far; absent without a total or a rate. */
  eta_s?: number;
}

const _MS_PER_S = 1000;

/** One re-bootstrap attempt's progress. */
export class RebootstrapProgress {
  #clock: () => number;
  #startedAt: number;
  #entries = 0;
  #bytes = 0;
  #total: number | undefined;
  #loggedAt: number;

  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
    this.#startedAt = clock();
    this.#loggedAt = this.#startedAt;
  }

  /** The primary's entry count when the snapshot started, when it said so. */
  expect(total: number | undefined): void {
    if (total !== undefined) this.#total = total;
  }

  /** Entries stored (a batch); logs progress at most every `REPLICA_PROGRESS_LOG_MS`. */
  stored(entries: number, bytes: number, logger: Logger): void {
    this.#entries += entries;
    this.#bytes += bytes;
    const now = this.#clock();
    if (now - this.#loggedAt < REPLICA_PROGRESS_LOG_MS) return;
    this.#loggedAt = now;
    logger.info("replica.rebootstrap_progress", { ...this.view() });
  }

  view(): RebootstrapView {
    const view: RebootstrapView = {
      entries_loaded: this.#entries,
      bytes_loaded: this.#bytes,
      started_at_unix_ms: this.#startedAt,
    };
    if (this.#total === undefined) return view;
    view.entries_total = this.#total;
    const elapsedS = (this.#clock() - this.#startedAt) / _MS_PER_S;
    if (this.#entries > 0 && elapsedS > 0) {
      const rate = this.#entries / elapsedS;
      view.eta_s = Math.max(0, Math.round((this.#total - this.#entries) / rate));
    }
    return view;
  }
}
