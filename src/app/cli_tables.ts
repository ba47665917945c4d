/**
 * Readable tables of the status and slots documents for the command line: what an operator at
 * 3 a.m. looks at first (health, lag, retained WAL, predicted invalidation) in aligned columns.
 * Pure: documents in, lines out.
 *
 * @module
 */

const _KIB = 1024;
const _BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
const _S_PER_MIN = 60;
const _S_PER_H = 3600;
const _S_PER_DAY = 86_400;

type _Doc = Record<string, unknown>;

/** The status document as lines: a summary, then replicas and slots (primary) or fields (replica). */
export function statusTable(status: _Doc): string[] {
  if (status.role === "replica") return _pairs(status);
  const summary = [
    `primary  term ${status.term}  timeline ${status.timeline}  current_lsn ${status.current_lsn}`,
    `oldest_lsn ${status.oldest_lsn}  applied_lsn ${status.applied_lsn}  commit ${status.commit_policy}` +
    ` (watermark ${status.commit_watermark})  wal ${bytes(status.wal_retained_bytes)}` +
    ` in ${status.wal_segments} segment(s)`,
    "",
  ];
  const replicas = (status.replicas as _Doc[] | undefined) ?? [];
  const replicaRows = replicas.map((r) => [
    String(r.id),
    String(r.region ?? "-"),
    r.healthy ? "yes" : "NO",
    r.rebootstrapping ? "yes" : "-",
    String(r.lag_lsn),
    `${r.lag_ms} ms`,
    String(r.last_acked_lsn),
    String(r.last_durable_lsn),
  ]);
  return [
    ...summary,
    ...table(
      ["REPLICA", "REGION", "HEALTHY", "REBOOTSTRAP", "LAG", "LAG_TIME", "ACKED", "DURABLE"],
      replicaRows,
    ),
    "",
    ...slotsTable((status.slots as _Doc[] | undefined) ?? []),
  ];
}

/** The slots as a table: position, retained WAL, its growth, and when it is predicted to go. */
export function slotsTable(slots: readonly _Doc[]): string[] {
  const rows = slots.map((s) => [
    String(s.replica_id),
    String(s.restart_lsn),
    bytes(s.retained_bytes),
    s.growth_bytes_per_s === null || s.growth_bytes_per_s === undefined
      ? "-"
      : `${bytes(s.growth_bytes_per_s)}/s`,
    duration(s.eta_invalidation_s),
    _slotState(s),
  ]);
  return table(["SLOT", "RESTART_LSN", "RETAINED", "GROWTH", "INVALIDATED_IN", "STATE"], rows);
}

/** Live, invalidated (why), or live past a cap because the state keeps its WAL anyway. */
function _slotState(slot: _Doc): string {
  if (slot.invalidation_reason) return `invalidated (${slot.invalidation_reason})`;
  return slot.horizon_deferred ? "live (past a cap; the state keeps its WAL)" : "live";
}

/** Aligned columns, header first; "(none)" under the header when there is no row. */
export function table(header: readonly string[], rows: readonly string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(header), ...(rows.length === 0 ? ["(none)"] : rows.map(line))];
}

/** Bytes in the largest unit that keeps the number at least 1 (1 decimal past bytes). */
export function bytes(value: unknown): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "-";
  let amount = value;
  let unit = 0;
  while (Math.abs(amount) >= _KIB && unit < _BYTE_UNITS.length - 1) {
    amount /= _KIB;
    unit += 1;
  }
  return unit === 0 ? `${Math.round(amount)} B` : `${amount.toFixed(1)} ${_BYTE_UNITS[unit]}`;
}

/** Seconds as the largest whole units that say it (`2h 5m`, `45s`); "-" for none. */
export function duration(value: unknown): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "-";
  const s = Math.max(0, Math.round(value));
  if (s >= _S_PER_DAY) {
    return `${Math.floor(s / _S_PER_DAY)}d ${Math.floor((s % _S_PER_DAY) / _S_PER_H)}h`;
  }
  if (s >= _S_PER_H) {
    return `${Math.floor(s / _S_PER_H)}h ${Math.floor((s % _S_PER_H) / _S_PER_MIN)}m`;
  }
  if (s >= _S_PER_MIN) return `${Math.floor(s / _S_PER_MIN)}m ${s % _S_PER_MIN}s`;
  return `${s}s`;
}

/** A flat document as `key  value` lines (a replica's status). */
function _pairs(doc: _Doc): string[] {
  const rows = Object.entries(doc).map(([key, value]) => [
    key,
    typeof value === "object" && value !== null ? JSON.stringify(value) : String(value),
  ]);
  return table(["FIELD", "VALUE"], rows);
}
