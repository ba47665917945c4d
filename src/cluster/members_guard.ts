/**
 * The member list across restarts (SPEC.md 13.4: "the member list is fixed; changing it is an
 * explicit admin operation"). etcd records the list the cluster last started with; a start with
 * another list may change it by one member, added or removed, never more. Why: a `quorum` write is
 * on a majority of the old list; after one change every majority of the new list still shares a
 * member with it, so an election still sees the write. Change two at once (three members to five)
 * and three new members of five can elect a leader none of whose voters holds it.
 *
 * @module
 */

import { StartupError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Coordinator } from "./coordinator.ts";

/** What one start does to the recorded list. */
export type MembersCheck =
  | { kind: "same" }
  | { kind: "recorded" }
  | { kind: "changed"; added: string[]; removed: string[] };

/** The members added to and removed from `recorded` by `wanted`. */
export function membersDiff(recorded: readonly string[], wanted: readonly string[]) {
  const added = wanted.filter((id) => !recorded.includes(id)).sort();
  const removed = recorded.filter((id) => !wanted.includes(id)).sort();
  return { added, removed };
}

/**
 * Records `members` in etcd on the first start, accepts the same list, and records a change of one
 * member (logged as `cluster.members_changed`). A change of more throws `StartupError`
 * (`members_change_too_large`: exit 2) and changes nothing.
 */
export async function checkMembers(
  coordinator: Coordinator,
  members: readonly string[],
  logger: Logger,
): Promise<MembersCheck> {
  for (;;) {
    const recorded = await coordinator.readMembers();
    if (!recorded) {
      if (await coordinator.writeMembers(members, undefined)) return { kind: "recorded" };
      continue;
    }
    const { added, removed } = membersDiff(recorded.members, members);
    if (added.length + removed.length === 0) return { kind: "same" };
    if (added.length + removed.length > 1) throw _tooLarge(recorded.members, members);
    if (!(await coordinator.writeMembers(members, recorded.revision))) continue;
    logger.warn("cluster.members_changed", { from: recorded.members, to: members, added, removed });
    return { kind: "changed", added, removed };
  }
}

function _tooLarge(recorded: readonly string[], wanted: readonly string[]): StartupError {
  const { added, removed } = membersDiff(recorded, wanted);
  return new StartupError(
    "members_change_too_large",
    `--members ${wanted.join(",")} differs from the list the cluster last ran with ` +
      `(${recorded.join(",")}) by more than one member (added: ${added.join(",") || "none"}; ` +
      `removed: ${
        removed.join(",") || "none"
      }). Change one member per restart of every node, and ` +
      "let the new member catch up before the next: a larger change can elect a leader that lacks " +
      "acknowledged quorum writes",
    { flag: "--members", recorded, wanted: [...wanted], added, removed },
  );
}
