// FailoverSlotsKeeper (SPEC.md 13.4) against a real etcd on loopback, with a real Primary: the
// leader's batched `ferry/<cluster>/slots` document (edges only, at most every 10 s, a failed write
// logged once until one succeeds), read back with etcdctl, and a new leader that mirrored nothing
// adopting that document's slots, capped at its fork LSN, members skipped.
//
// The keeper checks on a real 1 s interval; its clock is a fake one the test moves, and every read
// of it marks one check, so "nothing was written" is asserted after checks happened, never after a
// fixed sleep.

import assert from "node:assert/strict";
import { FailoverSlotsKeeper } from "../../src/app/failover_slots_keeper.ts";
import { EtcdCoordinator, type LeaderRecord } from "../../src/cluster/coordinator.ts";
import { EtcdClient } from "../../src/cluster/etcd.ts";
import {
  type MirroredSlot,
  parseSlotsDocument,
  slotsDocument,
} from "../../src/cluster/failover_slots.ts";
import { SLOTS_MIRROR_CHECK_MS, SLOTS_MIRROR_INTERVAL_MS } from "../../src/core/cluster_limits.ts";
import type { LogLine } from "../../src/core/log.ts";
import { ETCD_MISSING, etcdctlMissing, type RunningEtcd, startEtcd } from "../helpers/etcd.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { appendRecords, type PrimaryFixture, withPrimary } from "../helpers/primary_fixture.ts";
import { waitUntil } from "../helpers/process.ts";

/** The publishing tests read etcd with etcdctl too; the adoption tests need etcd alone. */
const ctlMissing = etcdctlMissing();
const ignore = ctlMissing !== undefined;
const skip = ctlMissing ? ` (skipped: ${ctlMissing})` : "";
const adoptIgnore = ETCD_MISSING !== undefined;
const adoptSkip = ETCD_MISSING ? ` (skipped: ${ETCD_MISSING})` : "";

const CLUSTER = "keeper";
const SLOTS_KEY = `ferry/${CLUSTER}/slots`;
const TERM = 4;
/** The leader key the keeper publishes under (as a promotion writes it). */
const LEADER: LeaderRecord = {
  node_id: "n1",
  url: "http://n1.test",
  term: TERM,
  timeline: 4,
  fork_lsn: 0,
};
/** The leader n1 and its standbys: their slots are never mirrored. */
const MEMBERS: ReadonlySet<string> = new Set(["n1", "n2", "n3"]);
/** Records in the leader's log, so slots can sit anywhere up to it. */
const RECORDS = 40;
/** Checks that must pass before "nothing was written" is asserted. */
const CHECKS_WITHOUT_WRITE = 2;
/** Failed writes while etcd is down before the warnings are counted. */
const FAILED_WRITES = 3;
/** The new leader's fork LSN in the adoption test. */
const FORK_LSN = 20;

/** The keeper's writes through the Coordinator, as the test sees them. */
interface Writes {
  attempts: number;
  failures: number;
  /** Writes etcd answered: a failure may still have reached it (timed out, then applied). */
  successes: number;
  inFlight: number;
}

interface Rig {
  etcd: RunningEtcd;
  coordinator: EtcdCoordinator;
  keeper: FailoverSlotsKeeper;
  fixture: PrimaryFixture;
  lines: LogLine[];
  writes: Writes;
  /** How often the keeper read its clock: once per check (and once per adoption). */
  clockReads: { count: number };
}

/** Runs `fn` with etcd, a Primary with RECORDS records and a keeper; all stopped after. */
async function withRig(fn: (rig: Rig) => Promise<void>): Promise<void> {
  const etcd = await startEtcd();
  const client = new EtcdClient({ endpoints: [etcd.url] });
  try {
    await withPrimary({}, async (fixture) => {
      await appendRecords(fixture.primary, RECORDS);
      const logger = createMemoryLogger();
      const coordinator = new EtcdCoordinator(client, CLUSTER);
      await client.put(`ferry/${CLUSTER}/leader`, JSON.stringify(LEADER));
      const writes = recordWrites(coordinator);
      const clockReads = { count: 0 };
      const clock = () => {
        clockReads.count += 1;
        return fixture.clock.now;
      };
      const keeper = new FailoverSlotsKeeper({ coordinator, logger, clock });
      try {
        await fn({ etcd, coordinator, keeper, fixture, lines: logger.lines, writes, clockReads });
      } finally {
        keeper.stopPublishing();
        await waitUntil("the last write to end", () => writes.inFlight === 0);
      }
    });
  } finally {
    client.close();
    await etcd.stop();
  }
}

/** Counts `coordinator.writeSlots` calls; a call is counted as soon as it is made. */
function recordWrites(coordinator: EtcdCoordinator): Writes {
  const writes: Writes = { attempts: 0, failures: 0, successes: 0, inFlight: 0 };
  const write = coordinator.writeSlots.bind(coordinator);
  coordinator.writeSlots = async (document: string, leader: LeaderRecord) => {
    writes.attempts += 1;
    writes.inFlight += 1;
    try {
      const done = await write(document, leader);
      writes.successes += 1;
      return done;
    } catch (error) {
      writes.failures += 1;
      throw error;
    } finally {
      writes.inFlight -= 1;
    }
  };
  return writes;
}

/** The slots document as etcd holds it (read with etcdctl, not through ferry's client). */
async function etcdctlGet(
  etcd: RunningEtcd,
): Promise<{ document: Record<string, unknown>; modRevision: number } | undefined> {
  const { code, stdout, stderr } = await new Deno.Command("etcdctl", {
    args: [`--endpoints=${etcd.url}`, "-w", "json", "get", SLOTS_KEY],
    env: { ETCDCTL_API: "3" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, decoder.decode(stderr));
  const kv = JSON.parse(decoder.decode(stdout)).kvs?.[0];
  if (kv === undefined) return undefined;
  return { document: JSON.parse(atob(kv.value)), modRevision: kv.mod_revision };
}

/** Waits until etcd holds a document written at the fake clock's time now, and returns it. */
function documentWrittenNow(
  rig: Rig,
): Promise<{ document: Record<string, unknown>; modRevision: number }> {
  return waitUntil("the slots document written now", async () => {
    const stored = await etcdctlGet(rig.etcd);
    return stored?.document.written_at_unix_ms === rig.fixture.clock.now ? stored : undefined;
  });
}

/** Waits until the keeper has made `count` more checks. */
async function checksPass(rig: Rig, count: number): Promise<void> {
  const from = rig.clockReads.count;
  await waitUntil(`${count} more checks`, () => rig.clockReads.count >= from + count);
}

function warnings(rig: Rig, event: string): LogLine[] {
  return rig.lines.filter((line) => line.level === "warn" && line.event === event);
}

/** Two edges (one with a region) and a member's slot, the member's furthest behind. */
function registerSlots(rig: Rig): MirroredSlot[] {
  const { primary } = rig.fixture;
  primary.register("edge-b", { region: "eu", sinceLsn: 12 });
  primary.register("edge-a", { sinceLsn: 30 });
  primary.register("n2", { sinceLsn: 3 });
  return [{ id: "edge-a", restart_lsn: 30 }, { id: "edge-b", restart_lsn: 12, region: "eu" }];
}

Deno.test({
  name:
    `FailoverSlotsKeeper.startPublishing() writes the edges' slots to etcd with the term and time, members left out${skip}`,
  ignore,
  async fn() {
    await withRig(async (rig) => {
      const edges = registerSlots(rig);
      rig.keeper.startPublishing(rig.fixture.primary, { leader: LEADER, members: MEMBERS });
      const stored = await documentWrittenNow(rig);
      assert.deepEqual(stored.document, {
        term: TERM,
        written_at_unix_ms: rig.fixture.clock.now,
        slots: edges,
      });
      assert.deepEqual(parseSlotsDocument(await rig.coordinator.readSlots()), edges);
      assert.equal(rig.writes.attempts, 1);
    });
  },
});

Deno.test({
  name:
    `FailoverSlotsKeeper writes a moved slot at most once per ${SLOTS_MIRROR_INTERVAL_MS} ms, and never for a member's${skip}`,
  ignore,
  async fn() {
    await withRig(async (rig) => {
      const { primary, clock } = rig.fixture;
      const edges = registerSlots(rig);
      rig.keeper.startPublishing(primary, { leader: LEADER, members: MEMBERS });
      const first = await documentWrittenNow(rig);
      // Half an interval later an edge moved: nothing is written yet.
      await primary.pinSlot("edge-a", 35);
      clock.advance(SLOTS_MIRROR_INTERVAL_MS / 2);
      await checksPass(rig, CHECKS_WITHOUT_WRITE);
      assert.equal(rig.writes.attempts, 1, "no write within the interval");
      assert.equal((await etcdctlGet(rig.etcd))?.modRevision, first.modRevision);
      // A whole interval after the first write, the moved slot is written.
      clock.advance(SLOTS_MIRROR_INTERVAL_MS / 2);
      const second = await documentWrittenNow(rig);
      assert.deepEqual(second.document.slots, [{ id: "edge-a", restart_lsn: 35 }, edges[1]]);
      assert.equal(rig.writes.attempts, 2);
      // Only a member moved, intervals later: the document would be the same, so nothing is.
      await primary.pinSlot("n2", 8);
      clock.advance(3 * SLOTS_MIRROR_INTERVAL_MS);
      await checksPass(rig, CHECKS_WITHOUT_WRITE);
      assert.equal(rig.writes.attempts, 2, "a member's slot is not in the document");
      assert.equal((await etcdctlGet(rig.etcd))?.modRevision, second.modRevision);
    });
  },
});

Deno.test({
  name:
    `FailoverSlotsKeeper with etcd down logs one cluster.slots_write_failed for many failed writes, and writes once etcd is back${skip}`,
  ignore,
  async fn() {
    await withRig(async (rig) => {
      const { primary, clock } = rig.fixture;
      const edges = registerSlots(rig);
      rig.keeper.startPublishing(primary, { leader: LEADER, members: MEMBERS });
      await documentWrittenNow(rig);
      await rig.etcd.kill();
      await primary.pinSlot("edge-a", 36);
      clock.advance(SLOTS_MIRROR_INTERVAL_MS);
      await waitUntil("failed writes", () => rig.writes.failures >= FAILED_WRITES);
      assert.equal(warnings(rig, "cluster.slots_write_failed").length, 1, "logged once");
      // Back: a check writes the document the failed writes left out (the throttle forgot them).
      // Nothing reached the dead etcd, so a document of the clock's time now is a new write.
      await rig.etcd.restart();
      const back = await documentWrittenNow(rig);
      assert.deepEqual(back.document.slots, [{ id: "edge-a", restart_lsn: 36 }, edges[1]]);
      // A write sent while etcd was starting may time out here yet be applied there: the keeper
      // counts it failed and writes again, so wait for the write it saw succeed.
      await waitUntil("a write etcd answered", () => rig.writes.successes >= 2);
      assert.equal(rig.writes.successes, 2, "two writes succeeded");
      assert.equal(warnings(rig, "cluster.slots_write_failed").length, 1);
      // A write succeeded: the next outage is logged again, once.
      await rig.etcd.kill();
      await primary.pinSlot("edge-a", 37);
      clock.advance(SLOTS_MIRROR_INTERVAL_MS);
      const failed = rig.writes.failures;
      await waitUntil("failed writes", () => rig.writes.failures >= failed + FAILED_WRITES);
      assert.equal(warnings(rig, "cluster.slots_write_failed").length, 2);
    });
  },
});

Deno.test({
  name:
    `FailoverSlotsKeeper that mirrored nothing adopts etcd's slots, capped at the fork LSN, members skipped${adoptSkip}`,
  ignore: adoptIgnore,
  async fn() {
    await withRig(async (rig) => {
      // The document a former leader left: one edge past this node's fork, one before it, a
      // member's slot (a former leader's view of the members may differ), and one edge this node
      // holds a slot for already.
      await rig.coordinator.writeSlots(
        slotsDocument([
          { id: "edge-a", restart_lsn: FORK_LSN + 15, region: "eu" },
          { id: "edge-b", restart_lsn: FORK_LSN - 15 },
          { id: "edge-c", restart_lsn: FORK_LSN - 10 },
          { id: "n3", restart_lsn: 2 },
        ], { term: TERM - 1, writtenAtUnixMs: 1 }),
        LEADER,
      );
      await rig.fixture.primary.pinSlot("edge-c", FORK_LSN - 2);
      const slots = await rig.keeper.toAdopt();
      assert.deepEqual(slots.map((slot) => slot.id), ["edge-a", "edge-b", "edge-c", "n3"]);
      await rig.keeper.adopt(rig.fixture.primary, slots, { forkLsn: FORK_LSN, members: MEMBERS });
      const adopted = rig.lines.find((line) => line.event === "cluster.slots_adopted");
      assert.deepEqual(adopted?.replica_ids, ["edge-a", "edge-b"]);
      assert.equal(adopted?.fork_lsn, FORK_LSN);
      // Persisted before adopt() resolved: a restart finds them.
      const reopened = await rig.fixture.restart();
      const restartLsns = ["edge-a", "edge-b", "edge-c", "n3"].map((id) =>
        reopened.slots.get(id)?.restartLsn
      );
      assert.deepEqual(restartLsns, [FORK_LSN, FORK_LSN - 15, FORK_LSN - 2, undefined]);
    });
  },
});

Deno.test({
  name:
    `FailoverSlotsKeeper.toAdopt() prefers the slots kept from control records, and with etcd down adopts none${adoptSkip}`,
  ignore: adoptIgnore,
  async fn() {
    await withRig(async (rig) => {
      await rig.coordinator.writeSlots(
        slotsDocument([{ id: "edge-a", restart_lsn: 9 }], { term: TERM, writtenAtUnixMs: 1 }),
        LEADER,
      );
      const kept = [{ id: "edge-k", restart_lsn: 4 }];
      rig.keeper.keep(kept);
      assert.deepEqual(await rig.keeper.toAdopt(), kept);
      rig.keeper.keep([]);
      assert.deepEqual(await rig.keeper.toAdopt(), [{ id: "edge-a", restart_lsn: 9 }]);
      await rig.etcd.kill();
      assert.deepEqual(await rig.keeper.toAdopt(), []);
      assert.equal(warnings(rig, "cluster.slots_read_failed").length, 1);
    });
  },
});

Deno.test({
  name:
    `FailoverSlotsKeeper of a deposed leader writes nothing once another leader holds the key${skip}`,
  ignore,
  async fn() {
    await withRig(async (rig) => {
      const { primary, clock } = rig.fixture;
      registerSlots(rig);
      rig.keeper.startPublishing(primary, { leader: LEADER, members: MEMBERS });
      const first = await documentWrittenNow(rig);
      // A newer leader took the key; the old one has not heard yet, and a slot moved.
      const next = { ...LEADER, node_id: "n2", url: "http://n2.test", term: TERM + 1 };
      const client = new EtcdClient({ endpoints: [rig.etcd.url] });
      try {
        await client.put(`ferry/${CLUSTER}/leader`, JSON.stringify(next));
      } finally {
        client.close();
      }
      await primary.pinSlot("edge-a", 35);
      clock.advance(SLOTS_MIRROR_INTERVAL_MS);
      await waitUntil("the refused write", () => refusals(rig) > 0);
      // Publishing stopped: checks would read the clock, and a write would be due again.
      const reads = rig.clockReads.count;
      clock.advance(SLOTS_MIRROR_INTERVAL_MS);
      await new Promise((resolve) =>
        setTimeout(resolve, CHECKS_WITHOUT_WRITE * SLOTS_MIRROR_CHECK_MS)
      );
      assert.equal(rig.clockReads.count, reads, "no check after the refusal");
      assert.equal(refusals(rig), 1, "logged once");
      assert.equal(rig.writes.attempts, 2, "no write after the refused one");
      assert.equal((await etcdctlGet(rig.etcd))?.modRevision, first.modRevision, "unchanged");
    });
  },
});

function refusals(rig: Rig): number {
  return rig.lines.filter((line) => line.event === "cluster.slots_write_refused").length;
}
