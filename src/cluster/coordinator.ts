/**
 * What a ferry node needs from its coordination store, and the etcd implementation (SPEC 13.4).
 *
 * Keys, all under `ferry/<cluster>/`:
 * - `term`: the permanent term counter, raised only by a promotion;
 * - `leader`: `{"node_id", "url", "term", "timeline", "fork_lsn"}`, bound to the leader's lease;
 * - `timelines/<n as 8 digits>`: `{"timeline", "parent", "fork_lsn", "term"}`, the history;
 * - `election/<T>/<node id>`: a member's answer for the round that would make term T, bound to the
 *   member's lease (a dead member's answer goes with it);
 * - `slots`: the failover slots document, written at most every 10 s;
 * - `members`: `{"members": [...]}`, the member list the cluster last started with (a start may
 *   change it by one member at a time: `members_guard.ts`).
 *
 * The interface lets tests put a fault layer between a node and etcd.
 *
 * @module
 */

import { ETCD_VALUE_BYTES_MAX, TIMELINE_HISTORY_ENTRIES_MAX } from "../core/cluster_limits.ts";
import { CLUSTER_MEMBERS_MAX } from "../core/cluster_limits.ts";
import type { VoteAnswer } from "./election.ts";
import type { EtcdClient, EtcdOp } from "./etcd.ts";
import { LeaseKeeper } from "./lease_keeper.ts";

/** The leader key's value. */
export interface LeaderRecord {
  node_id: string;
  url: string;
  term: number;
  timeline: number;
  /** Last LSN of the parent timeline that the new timeline keeps. */
  fork_lsn: number;
}

/** One entry of the timeline history. */
export interface TimelineEntry {
  timeline: number;
  /** The timeline this one forked from (0 for the first). */
  parent: number;
  fork_lsn: number;
  term: number;
}

/** A promotion to ask for: the term it expects to raise, and what it writes. */
export interface Promotion {
  /** The counter's value the candidate read; the promotion fails if it moved. */
  fromTerm: number;
  leader: LeaderRecord;
  timeline: TimelineEntry;
}

/** The coordination store of one cluster, as a node sees it. */
export interface Coordinator {
  /** Grants this node's lease and keeps it alive (its answers and leader key are bound to it). */
  startLease(ttlS: number): Promise<LeaseKeeper>;
  /** The leader key's value, if a leader holds it. */
  readLeader(): Promise<LeaderRecord | undefined>;
  /** The term counter (0 before the first promotion). */
  readTerm(): Promise<number>;
  /** The whole timeline history, oldest first. */
  readTimelines(): Promise<TimelineEntry[]>;
  /** Writes this member's answer for the round of `term`, bound to `leaseId`. */
  answer(term: number, answer: VoteAnswer, leaseId: string): Promise<void>;
  /** The live answers of the round of `term`. */
  answers(term: number): Promise<VoteAnswer[]>;
  /**
   * In one transaction, only if the counter still reads `fromTerm` and no leader key exists: raises
   * the counter, creates the leader key bound to `leaseId`, appends the timeline entry, and drops
   * the round's answers. False when another member won.
   */
  promote(promotion: Promotion, leaseId: string): Promise<boolean>;
  /** Deletes the leader key if this lease holds it (a clean step-down). */
  resign(leaseId: string): Promise<void>;
  /**
   * Writes the failover slots document, only while the leader key still holds `leader` (a deposed
   * leader's late write must not replace its successor's). False when it no longer does.
   */
  writeSlots(document: string, leader: LeaderRecord): Promise<boolean>;
  /** Reads the failover slots document. */
  readSlots(): Promise<string | undefined>;
  /** The member list recorded in etcd (undefined before the first start), and its revision. */
  readMembers(): Promise<{ members: string[]; revision: string } | undefined>;
  /**
   * Records `members` if the recorded list is still at `revision` (undefined: none recorded yet).
   * False when another start changed it meanwhile.
   */
  writeMembers(members: readonly string[], revision: string | undefined): Promise<boolean>;
}

/** The Coordinator over etcd. */
export class EtcdCoordinator implements Coordinator {
  readonly #client: EtcdClient;
  readonly #prefix: string;

  constructor(client: EtcdClient, cluster: string) {
    this.#client = client;
    this.#prefix = `ferry/${cluster}/`;
  }

  startLease(ttlS: number): Promise<LeaseKeeper> {
    return LeaseKeeper.start(this.#client, ttlS);
  }

  async readLeader(): Promise<LeaderRecord | undefined> {
    const kv = await this.#client.get(this.#key("leader"));
    return kv ? _parse<LeaderRecord>(kv.value) : undefined;
  }

  async readTerm(): Promise<number> {
    const kv = await this.#client.get(this.#key("term"));
    return kv ? Number(kv.value) : 0;
  }

  async readTimelines(): Promise<TimelineEntry[]> {
    const kvs = await this.#client.list(this.#key("timelines/"), TIMELINE_HISTORY_ENTRIES_MAX);
    return kvs.map((kv) => _parse<TimelineEntry>(kv.value)).sort((a, b) => a.timeline - b.timeline);
  }

  async answer(term: number, answer: VoteAnswer, leaseId: string): Promise<void> {
    await this.#client.put(
      this.#key(`election/${term}/${answer.node_id}`),
      _json(answer),
      leaseId,
    );
  }

  async answers(term: number): Promise<VoteAnswer[]> {
    const kvs = await this.#client.list(this.#key(`election/${term}/`), CLUSTER_MEMBERS_MAX * 4);
    return kvs.map((kv) => _parse<VoteAnswer>(kv.value));
  }

  async promote(promotion: Promotion, leaseId: string): Promise<boolean> {
    const termKey = this.#key("term");
    const current = await this.#client.get(termKey);
    if ((current ? Number(current.value) : 0) !== promotion.fromTerm) return false;
    const toTerm = promotion.fromTerm + 1;
    const timelineKey = this.#key(`timelines/${_pad(promotion.timeline.timeline)}`);
    const writes: EtcdOp[] = [
      { put: { key: termKey, value: String(toTerm) } },
      { put: { key: this.#key("leader"), value: _json(promotion.leader), lease: leaseId } },
      { put: { key: timelineKey, value: _json(promotion.timeline) } },
    ];
    const done = await this.#client.txn(
      [
        current
          ? { key: termKey, target: "MOD", modRevision: current.modRevision }
          : { key: termKey, target: "CREATE", createRevision: "0" },
        { key: this.#key("leader"), target: "CREATE", createRevision: "0" },
        { key: timelineKey, target: "CREATE", createRevision: "0" },
      ],
      writes,
    );
    if (done.succeeded) await this.#client.deletePrefix(this.#key(`election/${toTerm}/`));
    return done.succeeded;
  }

  async resign(leaseId: string): Promise<void> {
    const key = this.#key("leader");
    const held = await this.#client.get(key);
    if (!held || held.lease !== leaseId) return;
    await this.#client.txn(
      [{ key, target: "MOD", modRevision: held.modRevision }],
      [{ delete: { key } }],
    );
  }

  async writeSlots(document: string, leader: LeaderRecord): Promise<boolean> {
    if (document.length > ETCD_VALUE_BYTES_MAX) {
      throw new RangeError(`the slots document is over ${ETCD_VALUE_BYTES_MAX} bytes`);
    }
    const done = await this.#client.txn(
      [{ key: this.#key("leader"), target: "VALUE", value: _json(leader) }],
      [{ put: { key: this.#key("slots"), value: document } }],
    );
    return done.succeeded;
  }

  async readSlots(): Promise<string | undefined> {
    return (await this.#client.get(this.#key("slots")))?.value;
  }

  async readMembers(): Promise<{ members: string[]; revision: string } | undefined> {
    const kv = await this.#client.get(this.#key("members"));
    if (!kv) return undefined;
    const members = _parse<{ members?: unknown }>(kv.value).members;
    const list = Array.isArray(members) ? members.filter((id) => typeof id === "string") : [];
    return { members: list, revision: kv.modRevision };
  }

  async writeMembers(members: readonly string[], revision: string | undefined): Promise<boolean> {
    const key = this.#key("members");
    const done = await this.#client.txn(
      [
        revision === undefined
          ? { key, target: "CREATE", createRevision: "0" }
          : { key, target: "MOD", modRevision: revision },
      ],
      [{ put: { key, value: _json({ members: [...members].sort() }) } }],
    );
    return done.succeeded;
  }

  #key(suffix: string): string {
    return this.#prefix + suffix;
  }
}

function _pad(timeline: number): string {
  return String(timeline).padStart(8, "0");
}

function _json(value: unknown): string {
  const text = JSON.stringify(value);
  if (text.length > ETCD_VALUE_BYTES_MAX) throw new RangeError("value too large for etcd");
  return text;
}

function _parse<T>(text: string): T {
  return JSON.parse(text) as T;
}
