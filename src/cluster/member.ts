/**
 * One member's view of its cluster: the loop that keeps its lease, follows the leader key, and runs
 * elections by the rules of SPEC 13.4. It knows nothing of spools or HTTP: the node that owns it
 * (src/app/run_node.ts) answers through `MemberHooks` with its log position, truncates to the
 * history, and switches its role when told.
 *
 * Order of one round, when no leader key exists:
 * 1. read the term counter T: the round makes term T+1;
 * 2. record T+1 as the highest term seen (from now on frames of older terms are refused);
 * 3. reconcile the log with the timeline history (truncate past a fork), then answer
 *    `(durable_lsn, last_term)` under `election/<T+1>/<id>`, bound to this member's lease;
 * 4. promote only with a majority of live answers and none ahead (`decideElection`), in the one
 *    transaction that raises the counter and creates the leader key (never while `canLead` says
 *    no: a node whose state awaits a leader's snapshot).
 *
 * @module
 */

import { LEADER_POLL_MS } from "../core/cluster_limits.ts";
import { EtcdUnavailableError, FerryError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Coordinator, LeaderRecord, TimelineEntry } from "./coordinator.ts";
import { decideElection, type ElectionDecision, type VoteAnswer } from "./election.ts";
import type { LeaseKeeper } from "./lease_keeper.ts";

/** A member's log position, as it answers an election. */
export interface MemberPosition {
  durable_lsn: number;
  last_term: number;
  timeline: number;
}

/** What the member asks of the node that owns it. */
export interface MemberHooks {
  /** The log's position now. */
  position(): MemberPosition;
  /** Records `term` as the highest seen (durably): frames of lower terms are refused from now. */
  seeTerm(term: number): Promise<void>;
  /** Truncates the log past where it leaves `history` (and rebuilds state if that cut it). */
  reconcile(history: readonly TimelineEntry[]): Promise<void>;
  /**
   * False while this node cannot lead (its state awaits a rebuild from a leader's snapshot): it
   * still answers elections with its true position, so nobody behind it wins, but never promotes.
   */
  canLead?(): boolean;
  /** This member now leads `leader.term`; its lease is `lease`. */
  lead(leader: LeaderRecord, lease: LeaseKeeper): Promise<void>;
  /** Another member leads (or nobody, during an election: `undefined`). */
  follow(leader: LeaderRecord | undefined): Promise<void>;
}

/** The member's fixed identity. */
export interface MemberOptions {
  nodeId: string;
  url: string;
  members: readonly string[];
  leaseTtlS: number;
  coordinator: Coordinator;
  hooks: MemberHooks;
  logger: Logger;
  /** How often to look at etcd (default LEADER_POLL_MS). */
  pollMs?: number;
}

/** The role a member plays right now. */
export type MemberRole = "leader" | "standby" | "candidate";

/** One member's loop. */
export class ClusterMember {
  readonly #options: MemberOptions;
  #lease: LeaseKeeper | undefined;
  #role: MemberRole = "candidate";
  #leader: LeaderRecord | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #lastDecision = "";
  #lastFailure = "";

  constructor(options: MemberOptions) {
    this.#options = options;
  }

  get role(): MemberRole {
    return this.#role;
  }

  /** The leader this member follows or is; undefined during an election. */
  get leader(): LeaderRecord | undefined {
    return this.#leader;
  }

  /** The lease, while this member leads: the node checks `holds()` before every answer. */
  get lease(): LeaseKeeper | undefined {
    return this.#role === "leader" ? this.#lease : undefined;
  }

  /** Grants the first lease (so an unreachable etcd fails the start), then loops. */
  async start(): Promise<void> {
    this.#lease = await this.#options.coordinator.startLease(this.#options.leaseTtlS);
    this.#loop = this.#run();
  }

  /** Stops the loop; a leader resigns its key so a standby takes over without waiting the TTL. */
  async stop(options: { resign: boolean } = { resign: true }): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    if (options.resign && this.#role === "leader" && this.#lease) {
      await this.#options.coordinator.resign(this.#lease.id).catch(() => {});
    }
    this.#lease?.stop();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#step();
        this.#lastFailure = "";
      } catch (error) {
        if (!(error instanceof FerryError)) throw error;
        // Once per distinct failure: an etcd outage would otherwise log five lines a second.
        if (error.message !== this.#lastFailure) {
          this.#log("warn", "cluster.step_failed", { error: error.message, code: error.code });
        }
        this.#lastFailure = error.message;
      }
      await this.#pause();
    }
  }

  #pause(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      setTimeout(resolve, this.#options.pollMs ?? LEADER_POLL_MS);
    });
  }

  async #step(): Promise<void> {
    if (this.#role === "leader") {
      if (this.#lease?.holds() && await this.#stillLeader()) return;
      this.#log("warn", "cluster.fenced", { term: this.#leader?.term });
      await this.#dropLease();
      await this.#becomeFollower(undefined);
    }
    await this.#ensureLease();
    const leader = await this.#options.coordinator.readLeader();
    if (leader) {
      if (leader.node_id === this.#options.nodeId) return; // a key of an old lease of ours
      if (this.#role !== "standby" || this.#leader?.term !== leader.term) {
        await this.#becomeFollower(leader);
      }
      return;
    }
    if (this.#role === "standby") await this.#becomeFollower(undefined);
    await this.#elect();
  }

  /**
   * A fenced leader lets its lease go for good: its key is deleted when etcd answers, and expires
   * within the TTL when not. Kept, a keepalive answered after an outage would revive a key that
   * names a node no longer leading, and every member would follow it.
   */
  async #dropLease(): Promise<void> {
    const lease = this.#lease;
    this.#lease = undefined;
    if (!lease) return;
    lease.stop();
    await this.#options.coordinator.resign(lease.id).catch(() => {});
  }

  /** The leader key still names this member's term (an operator may have deleted it). */
  async #stillLeader(): Promise<boolean> {
    const key = await this.#options.coordinator.readLeader();
    return key?.node_id === this.#options.nodeId && key.term === this.#leader?.term;
  }

  async #ensureLease(): Promise<void> {
    if (this.#lease?.holds()) return;
    this.#lease?.stop();
    this.#lease = undefined;
    this.#lease = await this.#options.coordinator.startLease(this.#options.leaseTtlS);
    this.#log("info", "cluster.lease_granted", { ttl_s: this.#lease.grantedTtlS });
  }

  async #elect(): Promise<void> {
    const { coordinator, hooks } = this.#options;
    const fromTerm = await coordinator.readTerm();
    // A promotion since this step read no leader key raised the counter read just now: follow it
    // next step rather than record a round past its term (its frames would then be refused).
    if (await coordinator.readLeader()) return;
    const round = fromTerm + 1;
    await hooks.seeTerm(round);
    const history = await coordinator.readTimelines();
    await hooks.reconcile(history);
    const self: VoteAnswer = {
      node_id: this.#options.nodeId,
      url: this.#options.url,
      ...hooks.position(),
    };
    await coordinator.answer(round, self, this.#lease!.id);
    const decision = decideElection(self, await coordinator.answers(round), this.#options.members);
    this.#logDecision(round, decision);
    if (decision.kind !== "promote" || hooks.canLead?.() === false) return;
    const timeline = history.reduce((max, entry) => Math.max(max, entry.timeline), 0) + 1;
    const leader: LeaderRecord = {
      node_id: this.#options.nodeId,
      url: this.#options.url,
      term: round,
      timeline,
      fork_lsn: self.durable_lsn,
    };
    const won = await coordinator.promote({
      fromTerm,
      leader,
      timeline: { timeline, parent: self.timeline, fork_lsn: self.durable_lsn, term: round },
    }, this.#lease!.id);
    if (!won) return;
    this.#role = "leader";
    this.#leader = leader;
    this.#log("info", "cluster.promoted", { ...leader, voters: decision.voters });
    await hooks.lead(leader, this.#lease!);
  }

  async #becomeFollower(leader: LeaderRecord | undefined): Promise<void> {
    const was = this.#role;
    this.#role = leader ? "standby" : "candidate";
    this.#leader = leader;
    if (leader) await this.#options.hooks.seeTerm(leader.term);
    this.#log("info", "cluster.following", {
      from: was,
      leader: leader?.node_id ?? null,
      term: leader?.term ?? null,
    });
    await this.#options.hooks.follow(leader);
  }

  #logDecision(round: number, decision: ElectionDecision): void {
    const summary = `${round}:${decision.kind}:${"reason" in decision ? decision.reason : ""}`;
    if (summary === this.#lastDecision) return;
    this.#lastDecision = summary;
    this.#log("info", "cluster.election", {
      term: round,
      decision: decision.kind,
      ...(decision.kind === "wait" ? { answered: decision.answered, needed: decision.needed } : {}),
      ...(decision.kind === "defer" ? { ahead: decision.ahead.node_id } : {}),
    });
  }

  #log(level: "info" | "warn", event: string, fields: Record<string, unknown>): void {
    this.#options.logger[level](event, { node_id: this.#options.nodeId, ...fields });
  }
}

/** True when `error` means etcd could not be reached (a start-up with no etcd exits 2). */
export function isEtcdUnavailable(error: unknown): boolean {
  return error instanceof EtcdUnavailableError;
}
