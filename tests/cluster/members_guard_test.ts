// The member list across restarts (SPEC.md 13.4): etcd records the list a cluster last started
// with; a start may change it by one member, added or removed; a larger change stops the start
// (exit 2) and changes nothing, since a new majority could then miss every holder of a quorum write.

import assert from "node:assert/strict";
import type { Coordinator } from "../../src/cluster/coordinator.ts";
import { checkMembers, membersDiff } from "../../src/cluster/members_guard.ts";
import { StartupError } from "../../src/core/errors.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";

/** A coordinator that keeps only the member list, with etcd's revision check. */
function membersStore(options: { raceOnce?: string[] } = {}) {
  let recorded: { members: string[]; revision: string } | undefined;
  let revision = 0;
  let race = options.raceOnce;
  const store = {
    readMembers: () => Promise.resolve(recorded && { ...recorded, members: [...recorded.members] }),
    writeMembers: (members: readonly string[], expected: string | undefined) => {
      if (race) {
        // Another start records its list between this one's read and write.
        recorded = { members: race, revision: String(++revision) };
        race = undefined;
        return Promise.resolve(false);
      }
      if (expected !== recorded?.revision) return Promise.resolve(false);
      recorded = { members: [...members].sort(), revision: String(++revision) };
      return Promise.resolve(true);
    },
  };
  return { coordinator: store as unknown as Coordinator, recorded: () => recorded?.members };
}

const THREE = ["n1", "n2", "n3"];

Deno.test("checkMembers() records the first list and accepts the same one in any order", async () => {
  const { coordinator, recorded } = membersStore();
  const logger = createMemoryLogger();
  assert.deepEqual(await checkMembers(coordinator, ["n2", "n1", "n3"], logger), {
    kind: "recorded",
  });
  assert.deepEqual(recorded(), THREE);
  assert.deepEqual(await checkMembers(coordinator, ["n3", "n2", "n1"], logger), { kind: "same" });
  assert.equal(logger.lines.length, 0);
});

Deno.test("checkMembers() takes one member added or removed, and logs it", async () => {
  const { coordinator, recorded } = membersStore();
  const logger = createMemoryLogger();
  await checkMembers(coordinator, THREE, logger);
  const grown = await checkMembers(coordinator, [...THREE, "n4"], logger);
  assert.deepEqual(grown, { kind: "changed", added: ["n4"], removed: [] });
  assert.deepEqual(recorded(), ["n1", "n2", "n3", "n4"]);
  const shrunk = await checkMembers(coordinator, ["n1", "n2", "n4"], logger);
  assert.deepEqual(shrunk, { kind: "changed", added: [], removed: ["n3"] });
  const lines = logger.lines.filter((line) => line.event === "cluster.members_changed");
  assert.equal(lines.length, 2);
  assert.deepEqual(lines[1]?.removed, ["n3"]);
});

Deno.test("checkMembers() refuses a change of more than one member and records nothing", async () => {
  const { coordinator, recorded } = membersStore();
  const logger = createMemoryLogger();
  await checkMembers(coordinator, THREE, logger);
  for (
    const wanted of [
      [...THREE, "n4", "n5"], // three to five: three new members of five are a majority
      ["n1", "n2", "n4"], // one replaced: one removed and one added
      ["n1"], // two removed
    ]
  ) {
    await assert.rejects(
      () => checkMembers(coordinator, wanted, logger),
      (error: unknown) =>
        error instanceof StartupError && error.code === "members_change_too_large" &&
        error.details.flag === "--members" && /one member per restart/.test(error.message),
    );
    assert.deepEqual(recorded(), THREE, `${wanted} changed nothing`);
  }
});

Deno.test("checkMembers() judges against the list another start recorded meanwhile", async () => {
  // This start read no list; another recorded three to five first: a change of two, refused.
  const { coordinator } = membersStore({ raceOnce: THREE });
  await assert.rejects(
    () => checkMembers(coordinator, [...THREE, "n4", "n5"], createMemoryLogger()),
    StartupError,
  );
  const same = membersStore({ raceOnce: THREE });
  assert.deepEqual(await checkMembers(same.coordinator, THREE, createMemoryLogger()), {
    kind: "same",
  });
});

Deno.test("membersDiff() lists the added and removed members, sorted", () => {
  assert.deepEqual(membersDiff(THREE, ["n5", "n1", "n4"]), {
    added: ["n4", "n5"],
    removed: ["n2", "n3"],
  });
});
