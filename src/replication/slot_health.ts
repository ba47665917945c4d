/**
 * Predictive slot health (SPEC.md 13.5): how fast each slot's retained WAL grows, and when it will
 * cross the first cap that invalidates it (section 4): the lag in records, the retained bytes, or,
 * for a replica that is not connected, the idle timeout, which needs no writes to happen and is
 * the usual cause. PostgreSQL shows `safe_wal_size`; this says when.
 *
 * Samples are taken on the health sweep (about every second) and kept for a window, so a bursty
 * writer is judged by its average over the window, not by its last burst. Pure apart from the
 * logger; the caller passes the clock.
 *
 * @module
 */

import {
  SLOT_GROWTH_SAMPLES_MAX,
  SLOT_GROWTH_SPAN_MS_MIN,
  SLOT_GROWTH_WINDOW_MS,
} from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import { isLive, type RetentionCaps } from "../slots/slot.ts";
import type { SlotStore } from "../slots/slot_store.ts";
import type { Spool } from "../wal/spool.ts";
import type { ReplicaRegistry } from "./registry.ts";

/** One slot as the sweep sees it. */
export interface SlotReading {
  id: string;
  live: boolean;
  retainedBytes: number;
  lagRecords: number;
  lastSeenAtUnixMs: number;
  /** Registered, healthy or with a pull open: the idle timeout does not run while it is. */
  connected: boolean;
}

/** What status, metrics and the page show of a slot. */
export interface SlotForecast {
  /**
   * Growth of the WAL retained for the slot over the window while it falls behind (its lag rising),
   * bytes per second; 0 while it keeps up; null before two samples span enough.
   */
  growthBytesPerS: number | null;
  /** Seconds until the first cap this slot will cross; null when none applies. */
  etaInvalidationS: number | null;
}

interface _Sample {
  atMs: number;
  retainedBytes: number;
  lagRecords: number;
}

const _NONE: SlotForecast = Object.freeze({ growthBytesPerS: null, etaInvalidationS: null });
const _MS_PER_S = 1000;

/** Growth and invalidation forecasts of every slot. */
export class SlotHealth {
  #caps: RetentionCaps;
  #warnBelowS: number;
  #logger: Logger;
  #samples = new Map<string, _Sample[]>();
  #forecasts = new Map<string, SlotForecast>();
  /** Slots whose forecast is under the warning threshold (warned once until it rises again). */
  #warned = new Set<string>();

  constructor(options: { caps: RetentionCaps; warnBelowS: number; logger: Logger }) {
    this.#caps = options.caps;
    this.#warnBelowS = options.warnBelowS;
    this.#logger = options.logger;
  }

  /** The latest forecast of `id` (all null for an unknown or invalidated slot). */
  forecastOf(id: string): SlotForecast {
    return this.#forecasts.get(id) ?? _NONE;
  }

  /** Takes one sample of every slot and recomputes the forecasts; forgets slots that are gone. */
  sample(nowMs: number, readings: readonly SlotReading[]): void {
    const seen = new Set<string>();
    for (const reading of readings) {
      seen.add(reading.id);
      const forecast = reading.live ? this.#forecast(nowMs, reading) : _NONE;
      this.#forecasts.set(reading.id, forecast);
      this.#warnIfSoon(reading.id, forecast);
    }
    for (const id of [...this.#samples.keys()]) if (!seen.has(id)) this.#forget(id);
    for (const id of [...this.#forecasts.keys()]) if (!seen.has(id)) this.#forget(id);
  }

  #forecast(nowMs: number, reading: SlotReading): SlotForecast {
    const samples = this.#record(nowMs, reading);
    const first = samples[0]!;
    const spanMs = nowMs - first.atMs;
    const rates = spanMs >= SLOT_GROWTH_SPAN_MS_MIN
      ? {
        bytesPerS: (reading.retainedBytes - first.retainedBytes) * _MS_PER_S / spanMs,
        recordsPerS: (reading.lagRecords - first.lagRecords) * _MS_PER_S / spanMs,
      }
      : undefined;
    // A slot keeping up (its lag not rising) retains only the head segment, which grows and is
    // sealed, never past a cap: it is not heading for invalidation, whatever that file does.
    const behind = rates !== undefined && rates.recordsPerS > 0 ? rates : undefined;
    const etas = [
      _etaToCap(this.#caps.retainedBytesMax, reading.retainedBytes, behind?.bytesPerS),
      _etaToCap(this.#caps.lagMaxRecords, reading.lagRecords, behind?.recordsPerS),
      this.#idleEta(nowMs, reading),
    ].filter((eta): eta is number => eta !== undefined);
    return {
      growthBytesPerS: rates === undefined ? null : Math.max(0, behind?.bytesPerS ?? 0),
      etaInvalidationS: etas.length === 0 ? null : Math.max(0, Math.min(...etas)),
    };
  }

  /** Adds the sample and drops those older than the window (or past the count bound). */
  #record(nowMs: number, reading: SlotReading): _Sample[] {
    let samples = this.#samples.get(reading.id);
    if (!samples) this.#samples.set(reading.id, samples = []);
    samples.push({
      atMs: nowMs,
      retainedBytes: reading.retainedBytes,
      lagRecords: reading.lagRecords,
    });
    let drop = 0;
    while (drop < samples.length - 1 && nowMs - samples[drop]!.atMs > SLOT_GROWTH_WINDOW_MS) drop++;
    drop = Math.max(drop, samples.length - SLOT_GROWTH_SAMPLES_MAX);
    if (drop > 0) samples.splice(0, drop);
    return samples;
  }

  /** A replica that is not connected runs down its idle timeout, writes or not. */
  #idleEta(nowMs: number, reading: SlotReading): number | undefined {
    if (this.#caps.idleTimeoutMs <= 0 || reading.connected) return undefined;
    return (reading.lastSeenAtUnixMs + this.#caps.idleTimeoutMs - nowMs) / _MS_PER_S;
  }

  #warnIfSoon(id: string, forecast: SlotForecast): void {
    const eta = forecast.etaInvalidationS;
    const soon = eta !== null && eta < this.#warnBelowS;
    if (!soon) {
      this.#warned.delete(id);
      return;
    }
    if (this.#warned.has(id)) return;
    this.#warned.add(id);
    this.#logger.warn("slot.invalidation_soon", {
      replica_id: id,
      eta_invalidation_s: Math.round(eta),
      growth_bytes_per_s: forecast.growthBytesPerS,
    });
  }

  #forget(id: string): void {
    this.#samples.delete(id);
    this.#forecasts.delete(id);
    this.#warned.delete(id);
  }
}

/** Seconds until `value` passes `cap` at `ratePerS`; undefined when the cap is off or not nearing. */
function _etaToCap(cap: number, value: number, ratePerS: number | undefined): number | undefined {
  if (cap <= 0 || ratePerS === undefined || ratePerS <= 0) return undefined;
  return (cap - value) / ratePerS;
}

/** Every slot as the sweep reads it: retained WAL, lag, last seen, and whether it is connected. */
export function slotReadings(
  spool: Spool,
  slots: SlotStore,
  registry: ReplicaRegistry,
): SlotReading[] {
  const current = spool.currentLsn();
  return slots.all().map((slot) => {
    const replica = registry.get(slot.replicaId);
    return {
      id: slot.replicaId,
      live: isLive(slot),
      retainedBytes: spool.retainedBytesAfter(slot.restartLsn),
      lagRecords: Math.max(0, current - slot.restartLsn),
      lastSeenAtUnixMs: slot.lastSeenAtUnixMs,
      connected: replica !== undefined && (replica.healthy || replica.openPulls > 0),
    };
  });
}
