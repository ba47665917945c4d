/** JSON views (snake_case, SPEC.md names) of replicas, slots and the status document. */

import type { Primary } from "../replication/primary.ts";
import type { ReplicaState } from "../replication/registry.ts";
import { type CommitPolicy, formatCommitPolicy } from "../replication/commit_policy.ts";
import { isLive, type Slot, slotRecord } from "../slots/slot.ts";
import type { StateApplyStatus } from "../state/reader.ts";

/** A registered replica as status and the flag route show it. */
export function replicaView(
  primary: Primary,
  replica: ReplicaState,
): Record<string, unknown> {
  return {
    id: replica.id,
    region: replica.region ?? null,
    healthy: replica.healthy,
    rebootstrapping: replica.rebootstrapping,
    last_sent_lsn: replica.lastSentLsn,
    last_acked_lsn: replica.lastAckedLsn,
    last_durable_lsn: replica.lastDurableLsn,
    lag_lsn: Math.max(0, primary.spool.currentLsn() - replica.lastAckedLsn),
    lag_ms: primary.lagMs(replica),
    apply_error_count: replica.applyErrorCount,
    divergence_count: replica.divergenceCount,
    connected_at_unix_ms: replica.connectedAtUnixMs,
    last_seen_at_unix_ms: replica.lastSeenAtUnixMs,
  };
}

/** A slot with the WAL it retains, its growth and when it is predicted to be invalidated. */
export function slotView(primary: Primary, slot: Slot): Record<string, unknown> {
  const forecast = primary.slotForecast(slot.replicaId);
  return {
    ...slotRecord(slot),
    active: isLive(slot),
    retained_bytes: isLive(slot) ? primary.spool.retainedBytesAfter(slot.restartLsn) : 0,
    growth_bytes_per_s: forecast.growthBytesPerS,
    eta_invalidation_s: forecast.etaInvalidationS,
    horizon_deferred: primary.horizonDeferred(slot.replicaId),
  };
}

/** The status document of SPEC.md 9.6. */
export function statusView(
  primary: Primary,
  extra: { appliedLsn: number; commitPolicy: CommitPolicy; stateApply?: StateApplyStatus },
): Record<string, unknown> {
  const progress = primary.progress();
  const counters = primary.counters();
  const replicas = [];
  for (const replica of primary.replicas()) replicas.push(replicaView(primary, replica));
  return {
    role: "primary",
    term: primary.term,
    timeline: primary.timeline,
    current_lsn: primary.spool.currentLsn(),
    oldest_lsn: primary.spool.oldestLsn(),
    applied_lsn: extra.appliedLsn,
    state_apply: extra.stateApply ?? null,
    commit_policy: formatCommitPolicy(extra.commitPolicy),
    commit_watermark: primary.commitWatermark(),
    replicas,
    slots: primary.slots.all().map((slot) => slotView(primary, slot)),
    full_resync_total: counters.fullResyncTotal,
    partial_resync_total: counters.partialResyncTotal,
    slot_invalidations: counters.invalidations,
    commit_waits: primary.waiter.counters(),
    replication_lag_lsn: progress?.lagLsn ?? 0,
    safe_replay_lsn: progress?.safeReplayLsn ?? null,
    retention_floor_lsn: primary.slots.persistedFloor() ?? null,
    wal_retained_bytes: primary.spool.retainedBytes(),
    wal_segments: primary.spool.segments().length,
    wal_tail_bytes: primary.spool.stats().tailBytes,
    wal_read_ahead_bytes: primary.spool.stats().readAheadBytes,
    topology_epoch: primary.epoch.value,
  };
}
