/**
 * The Deno KV copy of the slots (SPEC.md section 4, "Deno KV"): `["slots", id]` → one slot with
 * reddb's field names, `["slots_meta"]` → `{generation}`. Every value carries a CRC-32 of its fields,
 * since SQLite has no checksums of its own. slot_store.ts writes both keys in one atomic commit.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { REPLICAS_MAX } from "../core/limits.ts";
import { INVALIDATION_REASONS, type InvalidationReason, type Slot, slotRecord } from "./slot.ts";

/** KV key prefix of slots and the key of the generation. */
export const KV_SLOTS_PREFIX = ["slots"] as const;
export const KV_SLOTS_META_KEY = ["slots_meta"] as const;

/** What reading one copy of the slots (the catalog file or KV) found. */
export type LoadedSlots =
  | { generation: number; slots: Slot[] }
  | { missing: true }
  | { corrupt: string };

/** Slot as stored in KV: reddb's field names, plus a CRC-32 of them. */
export function slotToKv(slot: Slot): Record<string, unknown> {
  const fields = slotRecord(slot);
  return { ...fields, check: _check(fields) };
}

/** The value of `KV_SLOTS_META_KEY`: the generation and its CRC-32. */
export function slotsMetaToKv(generation: number): Record<string, unknown> {
  return { generation, check: _check({ generation }) };
}

/** The replica ids of every slot entry in KV (bounded: at most twice `REPLICAS_MAX`). */
export async function kvSlotIds(kv: Deno.Kv): Promise<string[]> {
  const ids: string[] = [];
  for await (
    const entry of kv.list({ prefix: [...KV_SLOTS_PREFIX] }, { limit: REPLICAS_MAX * 2 })
  ) {
    const id = entry.key[1];
    if (typeof id === "string") ids.push(id);
  }
  return ids;
}

/**
 * Reads the slots and their generation from KV. Missing when there is neither; corrupt (naming the
 * problem) when an entry or the generation fails its check or does not decode, or when there are
 * more than `REPLICAS_MAX` slots.
 */
export async function loadKvSlots(kv: Deno.Kv, timeline: number): Promise<LoadedSlots> {
  const meta = await kv.get<unknown>([...KV_SLOTS_META_KEY]);
  const slots: Slot[] = [];
  let count = 0;
  for await (const entry of kv.list<unknown>({ prefix: [...KV_SLOTS_PREFIX] })) {
    count += 1;
    if (count > REPLICAS_MAX) return { corrupt: `more than ${REPLICAS_MAX} slots in KV` };
    const id = entry.key[1];
    const slot = typeof id === "string" ? _slotFromKv(id, entry.value, timeline) : undefined;
    if (!slot) return { corrupt: `slot entry ${JSON.stringify(entry.key)} does not decode` };
    slots.push(slot);
  }
  if (meta.value === null) {
    return slots.length === 0 ? { missing: true } : { corrupt: "slots without generation" };
  }
  const { generation, check } = meta.value as { generation?: unknown; check?: unknown };
  if (
    typeof generation !== "number" || !Number.isSafeInteger(generation) || generation < 0 ||
    check !== _check({ generation })
  ) {
    return { corrupt: "slots_meta has no valid generation" };
  }
  return { generation, slots };
}

/** CRC-32 of the JSON of an object's fields in a fixed order (the integrity check of KV values). */
function _check(fields: Record<string, unknown>): number {
  return crc32(new TextEncoder().encode(JSON.stringify(Object.values(fields))));
}

function _isLsn(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function _slotFromKv(id: string, value: unknown, timeline: number): Slot | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { check, ...v } = value as Record<string, unknown>;
  if (check !== _check(v)) return undefined;
  const positions = [
    v.restart_lsn,
    v.confirmed_write_lsn,
    v.confirmed_flush_lsn,
    v.confirmed_apply_lsn,
  ];
  if (v.replica_id !== id || v.timeline !== timeline || !positions.every(_isLsn)) return undefined;
  if (!_isLsn(v.last_seen_at_unix_ms)) return undefined;
  const [restartLsn, write, flush, apply] = positions as number[];
  if (!(apply! <= flush! && flush! <= write!)) return undefined;
  const reason = v.invalidation_reason;
  if (reason !== null && !INVALIDATION_REASONS.includes(reason as InvalidationReason)) {
    return undefined;
  }
  const invalidatedAt = v.invalidated_at_unix_ms;
  if (invalidatedAt !== null && !_isLsn(invalidatedAt)) return undefined;
  return {
    replicaId: id,
    timeline,
    restartLsn: restartLsn!,
    confirmedWriteLsn: write!,
    confirmedFlushLsn: flush!,
    confirmedApplyLsn: apply!,
    active: reason === null,
    lastSeenAtUnixMs: v.last_seen_at_unix_ms,
    invalidationReason: (reason ?? undefined) as InvalidationReason | undefined,
    invalidatedAtUnixMs: (invalidatedAt ?? undefined) as number | undefined,
  };
}
