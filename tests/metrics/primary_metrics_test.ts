// SPEC.md section 11 through Metrics: every named metric is exposed, the scrape-time values match
// the primary they read, series of a replica or slot that went away disappear, and the text passes
// `promtool check metrics` with no lint problems.

import assert from "node:assert/strict";
import client from "prom-client";
import { RebootstrapRequiredError, WalCorruptionError } from "../../src/core/errors.ts";
import { Metrics } from "../../src/metrics/primary_metrics.ts";
import { programSucceeds } from "../helpers/process.ts";
import {
  appendRecords,
  type PrimaryFixture,
  SEGMENT_FILLING_PAYLOAD,
  withPrimary,
} from "../helpers/primary_fixture.ts";

/** Every metric SPEC.md section 11 and the module's contract name, with its exposed type. */
const EXPECTED_METRICS: ReadonlyArray<readonly [string, string]> = [
  ["ferry_wal_current_lsn", "gauge"],
  ["ferry_wal_oldest_lsn", "gauge"],
  ["ferry_wal_retained_bytes", "gauge"],
  ["ferry_wal_segments", "gauge"],
  ["ferry_wal_tail_bytes", "gauge"],
  ["ferry_wal_read_ahead_bytes", "gauge"],
  ["ferry_pull_waiters", "gauge"],
  // Untyped, not gauge: promtool rejects a `_count` suffix on a gauge (see src/metrics.ts).
  ["ferry_replica_count", "untyped"],
  ["ferry_topology_epoch", "gauge"],
  ["ferry_topology_waiters", "gauge"],
  ["ferry_state_applied_lsn", "gauge"],
  ["ferry_state_apply_lag_seconds", "gauge"],
  ["ferry_state_apply_rest_seconds_total", "counter"],
  ["ferry_state_writes_held_total", "counter"],
  ["ferry_commit_watermark_lsn", "gauge"],
  ["ferry_commit_waits_pending", "gauge"],
  ["ferry_replication_lag_records", "gauge"],
  ["ferry_replication_safe_replay_lsn", "gauge"],
  ["ferry_replica_acked_lsn", "gauge"],
  ["ferry_replica_durable_lsn", "gauge"],
  ["ferry_replica_sent_lsn", "gauge"],
  ["ferry_replica_lag_records", "gauge"],
  ["ferry_replica_lag_seconds", "gauge"],
  ["ferry_replica_healthy", "gauge"],
  ["ferry_replica_rebootstrapping", "gauge"],
  ["ferry_replica_apply_errors", "gauge"],
  ["ferry_replica_divergences", "gauge"],
  ["ferry_slot_restart_lsn", "gauge"],
  ["ferry_slot_retained_bytes", "gauge"],
  ["ferry_slot_invalidated", "gauge"],
  ["ferry_wal_fsync_seconds", "histogram"],
  ["ferry_wal_group_commit_records", "histogram"],
  ["ferry_replication_full_resync_total", "counter"],
  ["ferry_replication_partial_resync_total", "counter"],
  ["ferry_commit_wait_total", "counter"],
  ["ferry_slot_invalidations_total", "counter"],
  ["ferry_http_requests_total", "counter"],
  ["ferry_wal_fsync_inline_total", "counter"],
  ["ferry_wal_corruption_total", "counter"],
  ["ferry_slots_persist_total", "counter"],
  ["ferry_slots_load_fallback_total", "counter"],
];

const ACK_ROUTE = "/v1/replicas/:id/ack";
const APPLIED_LSN = 4;
const STATE_LAG_MS = 1500;
const STATE_RESTED_MS = 250;
const WRITES_HELD = 3;
const LAG_MS = 2000;

function pullOptions(replicaId: string) {
  return { replicaId, sinceLsn: 0, maxCount: 1000, maxBytes: 1 << 20, awaitTimeoutMs: 0 };
}

/**
 * A primary with a lag cap of one record, observed by a fresh Metrics, brought to a known state:
 * "a" (eu) pulled and acked 5 of 6 records; "b" (us) pulled, was invalidated (horizon) and was then
 * refused a pull (a full resync); 5 local writes and one `ack_n=1` write that timed out, each its own
 * group commit; and a few HTTP and observer events. The fixture passes spool options through, so the
 * spool reports to the real observer; its slot store takes no observer, so the test calls that one
 * (and the spool's corruption hook, which needs a damaged file) directly.
 */
async function withObservedPrimary(
  fn: (fixture: PrimaryFixture, metrics: Metrics) => Promise<void>,
): Promise<void> {
  const caps = { lagMaxRecords: 1, retainedBytesMax: 0, idleTimeoutMs: 0 };
  const metrics = new Metrics();
  // One-record segments, so a slot further ahead retains fewer bytes than the whole spool.
  const spool = { segmentBytesMax: 4096, observer: metrics.spoolObserver };
  const options = { primary: { caps }, spool };
  await withPrimary(options, async (fixture) => {
    const { primary, clock } = fixture;
    metrics.attachPrimary(primary, {
      appliedLsn: () => APPLIED_LSN,
      stateLagMs: () => STATE_LAG_MS,
      stateRestedMs: () => STATE_RESTED_MS,
      writesHeld: () => WRITES_HELD,
    });
    primary.register("a", { region: "eu" });
    primary.register("b", { region: "us" });
    await appendRecords(primary, 5, SEGMENT_FILLING_PAYLOAD);
    await primary.pull(pullOptions("a"));
    await primary.pull(pullOptions("b"));
    primary.ack("a", { appliedLsn: 5, durableLsn: 5, applyErrorsTotal: 2, divergenceTotal: 1 });
    assert.deepEqual(primary.invalidateSlots(), ["b"]);
    await assert.rejects(primary.pull(pullOptions("b")), RebootstrapRequiredError);
    const write = await primary.append([new Uint8Array([1])], {
      policy: { kind: "ack_n", n: 1 },
      timeoutMs: 10,
    });
    assert.equal(write.commit.outcome, "timed_out");
    clock.advance(LAG_MS);
    metrics.observeHttp(ACK_ROUTE, 200);
    metrics.observeHttp(ACK_ROUTE, 200);
    metrics.observeHttp("/v1/write", 409);
    metrics.spoolObserver.corruption!(new WalCorruptionError("flipped bit in a test"));
    metrics.slotStoreObserver.persisted!(1);
    metrics.slotStoreObserver.loadFallback!("kv", "the catalog file is missing");
    await fn(fixture, metrics);
  });
}

/** The value of the sample line `series value`, or undefined when the series is absent. */
function sampleValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

Deno.test("render() exposes every metric of SPEC.md section 11 with its type", async () => {
  await withObservedPrimary(async (_fixture, metrics) => {
    const text = await metrics.render();
    for (const [name, type] of EXPECTED_METRICS) {
      assert.match(text, new RegExp(`^# HELP ${name} \\S`, "m"), `${name} has help text`);
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, "m"), `${name} is a ${type}`);
    }
  });
});

Deno.test("render() reads the WAL, replication and topology gauges from the primary", async () => {
  await withObservedPrimary(async ({ primary, spool }, metrics) => {
    const text = await metrics.render();
    assert.equal(spool.currentLsn(), 6);
    assert.equal(sampleValue(text, "ferry_wal_current_lsn"), spool.currentLsn());
    assert.equal(sampleValue(text, "ferry_wal_oldest_lsn"), spool.oldestLsn());
    assert.equal(sampleValue(text, "ferry_wal_retained_bytes"), spool.retainedBytes());
    assert.equal(sampleValue(text, "ferry_wal_segments"), spool.segments().length);
    assert.equal(sampleValue(text, "ferry_replica_count"), 2);
    assert.equal(sampleValue(text, "ferry_topology_epoch"), primary.epoch.value);
    assert.equal(sampleValue(text, "ferry_state_applied_lsn"), APPLIED_LSN);
    assert.equal(sampleValue(text, "ferry_state_apply_lag_seconds"), 1.5);
    assert.equal(sampleValue(text, "ferry_state_apply_rest_seconds_total"), 0.25);
    assert.equal(sampleValue(text, "ferry_state_writes_held_total"), WRITES_HELD);
    // The floor is `local`, so the watermark is the current LSN.
    assert.equal(sampleValue(text, "ferry_commit_watermark_lsn"), 6);
    assert.equal(sampleValue(text, "ferry_commit_waits_pending"), 0);
    // Max sent (5) minus min applied ("b" never acked: 0); min durable is "b"'s 0.
    assert.equal(sampleValue(text, "ferry_replication_lag_records"), 5);
    assert.equal(sampleValue(text, "ferry_replication_safe_replay_lsn"), 0);
  });
});

Deno.test("render() reads per-replica and per-slot series from the registry and the slots", async () => {
  await withObservedPrimary(async ({ spool }, metrics) => {
    const text = await metrics.render();
    const a = '{replica_id="a"}';
    assert.equal(sampleValue(text, `ferry_replica_acked_lsn${a}`), 5);
    assert.equal(sampleValue(text, `ferry_replica_durable_lsn${a}`), 5);
    assert.equal(sampleValue(text, `ferry_replica_sent_lsn${a}`), 5);
    assert.equal(sampleValue(text, `ferry_replica_lag_records${a}`), 1);
    // Record 6 was written LAG_MS before the scrape and "a" has not applied it.
    assert.equal(sampleValue(text, `ferry_replica_lag_seconds${a}`), LAG_MS / 1000);
    assert.equal(sampleValue(text, `ferry_replica_healthy${a}`), 1);
    assert.equal(sampleValue(text, `ferry_replica_rebootstrapping${a}`), 0);
    assert.equal(sampleValue(text, `ferry_replica_apply_errors${a}`), 2);
    assert.equal(sampleValue(text, `ferry_replica_divergences${a}`), 1);
    assert.equal(sampleValue(text, `ferry_slot_restart_lsn${a}`), 5);
    assert.equal(sampleValue(text, `ferry_slot_retained_bytes${a}`), spool.retainedBytesAfter(5));
    assert(spool.retainedBytesAfter(5) < spool.retainedBytes(), "the test needs several segments");
    assert.equal(
      sampleValue(text, 'ferry_slot_retained_bytes{replica_id="b"}'),
      spool.retainedBytes(),
    );
    assert.equal(sampleValue(text, 'ferry_slot_invalidated{replica_id="a",reason="none"}'), 0);
    assert.equal(sampleValue(text, 'ferry_slot_invalidated{replica_id="b",reason="horizon"}'), 1);
    assert.equal(sampleValue(text, 'ferry_slot_restart_lsn{replica_id="b"}'), 0);
  });
});

Deno.test("render() mirrors the primary's counters and counts observed events", async () => {
  await withObservedPrimary(async (_fixture, metrics) => {
    // A mirrored counter equals its source at every scrape; it does not add the source again.
    await metrics.render();
    const text = await metrics.render();
    assert.equal(sampleValue(text, 'ferry_commit_wait_total{outcome="timed_out"}'), 1);
    assert.equal(sampleValue(text, 'ferry_commit_wait_total{outcome="not_required"}'), 5);
    assert.equal(sampleValue(text, 'ferry_commit_wait_total{outcome="reached"}'), 0);
    assert.equal(sampleValue(text, 'ferry_slot_invalidations_total{reason="horizon"}'), 1);
    assert.equal(sampleValue(text, 'ferry_slot_invalidations_total{reason="idle-timeout"}'), 0);
    assert.equal(sampleValue(text, "ferry_replication_full_resync_total"), 1);
    assert.equal(sampleValue(text, "ferry_replication_partial_resync_total"), 2);
    assert.equal(
      sampleValue(text, `ferry_http_requests_total{route="${ACK_ROUTE}",status="200"}`),
      2,
    );
    assert.equal(sampleValue(text, 'ferry_http_requests_total{route="/v1/write",status="409"}'), 1);
    // Six sequential one-record writes: six group commits of one record, each fsynced once.
    assert.equal(sampleValue(text, "ferry_wal_fsync_seconds_count"), 6);
    assert.equal(sampleValue(text, 'ferry_wal_fsync_seconds_bucket{le="+Inf"}'), 6);
    assert.equal(sampleValue(text, "ferry_wal_group_commit_records_count"), 6);
    assert.equal(sampleValue(text, "ferry_wal_group_commit_records_sum"), 6);
    assert.equal(sampleValue(text, 'ferry_wal_group_commit_records_bucket{le="1"}'), 6);
    assert.equal(sampleValue(text, "ferry_wal_corruption_total"), 1);
    assert.equal(sampleValue(text, "ferry_slots_persist_total"), 1);
    assert.equal(sampleValue(text, 'ferry_slots_load_fallback_total{source="kv"}'), 1);
    assert.equal(sampleValue(text, 'ferry_slots_load_fallback_total{source="catalog"}'), 0);
  });
});

Deno.test("render() drops the series of an unregistered replica and a dropped slot", async () => {
  await withObservedPrimary(async ({ primary }, metrics) => {
    assert.match(await metrics.render(), /replica_id="a"/);
    assert.equal(primary.unregister("a"), true);
    assert.equal(await primary.dropSlot("a"), true);
    const text = await metrics.render();
    assert.doesNotMatch(text, /replica_id="a"/);
    // "b" is still registered and its invalidated slot still exists, so its series stay.
    assert.equal(sampleValue(text, 'ferry_replica_acked_lsn{replica_id="b"}'), 0);
    assert.equal(sampleValue(text, 'ferry_slot_invalidated{replica_id="b",reason="horizon"}'), 1);
    assert.equal(sampleValue(text, "ferry_replica_count"), 1);
  });
});

Deno.test("new Metrics() leaves prom-client's global registry empty, so instances coexist", async () => {
  const first = new Metrics();
  const second = new Metrics();
  assert.notEqual(first.registry, client.register);
  assert.equal(client.register.getMetricsAsArray().length, 0);
  // Before attachPrimary() the scrape-time gauges read 0 and labelled series are absent.
  const text = await second.render();
  assert.equal(sampleValue(text, "ferry_wal_current_lsn"), 0);
  assert.doesNotMatch(text, /replica_id=/);
  assert.match(first.contentType, /^text\/plain; version=0\.0\.4/);
});

Deno.test("attachPrimary() twice and observeHttp() with a bad status are programmer errors", async () => {
  await withPrimary({}, ({ primary }) => {
    const metrics = new Metrics();
    metrics.attachPrimary(primary);
    assert.throws(() => metrics.attachPrimary(primary), assert.AssertionError);
    assert.throws(() => metrics.observeHttp(ACK_ROUTE, 42), assert.AssertionError);
    assert.throws(() => metrics.observeHttp("", 200), assert.AssertionError);
    return Promise.resolve();
  });
});

// ---- promtool ----

const PROMTOOL_REQUIRED = Deno.env.get("FERRY_REQUIRE_PROMTOOL") === "1";
const PROMTOOL_FOUND = await promtoolFound();

/** True when `promtool --version` runs; false when there is no such binary on PATH. */
function promtoolFound(): Promise<boolean> {
  return programSucceeds("promtool", { args: ["--version"] });
}

/** Feeds `text` to `promtool check metrics` on stdin; its exit code and everything it printed. */
async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const feed = async () => {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
  };
  const [, result] = await Promise.all([feed(), child.output()]);
  const decoder = new TextDecoder();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

const PROMTOOL_TEST_NAME = "render() passes promtool check metrics with no lint problems";

Deno.test({
  name: PROMTOOL_FOUND || PROMTOOL_REQUIRED ? PROMTOOL_TEST_NAME : `${PROMTOOL_TEST_NAME} ` +
    "(skipped: promtool not installed; CI installs Debian's prometheus package)",
  ignore: !PROMTOOL_FOUND && !PROMTOOL_REQUIRED,
  fn: async () => {
    assert(
      PROMTOOL_FOUND,
      "FERRY_REQUIRE_PROMTOOL=1 but promtool is not on PATH: install Debian's prometheus " +
        "package (it provides /usr/bin/promtool)",
    );
    await withObservedPrimary(async (_fixture, metrics) => {
      const text = await metrics.render();
      const { code, output } = await promtoolCheck(text);
      assert.equal(output, "", `promtool reported problems:\n${output}`);
      assert.equal(code, 0, `promtool exited with ${code}`);
    });
  },
});
