/**
 * One cluster member's serving side (SPEC.md 13.4), switched by its `ClusterMember`:
 *
 * - **standby**: its stores opened as a relay's (a mirrored log, `--keep-wal`), a `LogFollower` of
 *   the leader keeping every frame durable before it acks; writes answer 307 to the leader (503
 *   `no_leader` during an election);
 * - **leader**: its stores opened as a primary's with the leader's term; `quorum` is a majority of
 *   the members (this node counted as one); every write is fenced by the lease's deadline.
 *
 * A switch closes the stores of one mode and opens them in the other, in process, as a restart
 * would (the same open and close order, already crash-tested); requests arriving meanwhile get 503.
 * The highest term seen is kept in `<data>/cluster_term` (written atomically): a restarted node
 * never accepts frames of a term it has already voted past.
 *
 * A truncation whose log no longer starts at LSN 1 leaves the node without stores until its state
 * is rebuilt from the leader's snapshot (`state_rebuild.ts`): it answers 503, answers elections
 * with its log's true position but never promotes, and rebuilds as soon as a leader is known.
 *
 * @module
 */

import { lastRecordTerm } from "./log_terms.ts";
import type { Config } from "../core/config.ts";
import type { EventHub } from "../core/events.ts";
import { NotLeaderError, TimelineDivergedError } from "../core/errors.ts";
import { denoFileSystem, joinPath, writeFileAtomic } from "../core/files.ts";
import { STATE_REBUILD_RETRY_MS } from "../core/cluster_limits.ts";
import type { Logger } from "../core/log.ts";
import { FerryClient } from "../client/client.ts";
import { checkPosition, commitOutcome } from "../cluster/history.ts";
import type { Coordinator, LeaderRecord, TimelineEntry } from "../cluster/coordinator.ts";
import type { LeaseKeeper } from "../cluster/lease_keeper.ts";
import type { MemberHooks, MemberPosition } from "../cluster/member.ts";
import { parseCommitPolicy } from "../replication/commit_policy.ts";
import { LogFollower } from "../replica/log_follower.ts";
import { FailoverSlotsKeeper } from "./failover_slots_keeper.ts";
import type { Listener } from "./listener.ts";
import {
  closeServing,
  closeStores,
  type OpenedServing,
  openServing,
  servingApp,
} from "./run_primary.ts";
import type { Auth } from "../http/auth.ts";
import {
  discardState,
  markStateRebuildNeeded,
  readLogPosition,
  rebuildStateFromLeader,
  stateRebuildNeeded,
  truncateNodeLog,
} from "./state_rebuild.ts";

/** The file holding the highest term this node has seen. */
const TERM_FILE = "cluster_term";
/** The local copy of the timeline history, in the WAL directory. */
const TIMELINES_CACHE_FILE = "timelines.json";

interface _Mode {
  kind: "standby" | "leader";
  opened: OpenedServing;
  fetch: (request: Request) => Response | Promise<Response>;
  follower?: LogFollower;
  lease?: LeaseKeeper;
}

/** What the node is given once. */
export interface ClusterNodeParts {
  config: Config;
  logger: Logger;
  events: EventHub;
  coordinator: Coordinator;
  auth: Auth;
  /** The other members' ids. */
  others: ReadonlySet<string>;
}

/** A member's stores and app, in the mode its `ClusterMember` says (see the module comment). */
export class ClusterNode {
  readonly #parts: ClusterNodeParts;
  #mode: _Mode | undefined;
  #leader: LeaderRecord | undefined;
  #termSeen = 0;
  #lastRecordTerm = 0;
  /** The timeline history as last read from etcd (at each switch of role or leader). */
  #history: readonly TimelineEntry[] = [];
  #ready = false;
  /** Transitions run one at a time. */
  #switching: Promise<unknown> = Promise.resolve();
  /** The failover slots mirrored as a standby, adopted on promotion, published as leader. */
  readonly #failoverSlots: FailoverSlotsKeeper;
  /** Set while the state awaits a rebuild from the leader's snapshot: the log's position. */
  #rebuild: { durable_lsn: number; last_term: number } | undefined;
  #rebuildRetry: ReturnType<typeof setTimeout> | undefined;
  /**
   * As a standby, the LSN up to which this node's log is known committed: what it serves edges,
   * snapshots and its state (SPEC.md 13.4). 0 at open (a returning leader's log may hold records
   * no majority has until it reconciles with the history); raised while it follows a leader.
   */
  #edgeSafeLsn = 0;
  /** Aborts a snapshot being loaded at shutdown. */
  readonly #stopping = new AbortController();

  private constructor(parts: ClusterNodeParts) {
    this.#parts = parts;
    this.#failoverSlots = new FailoverSlotsKeeper(parts);
  }

  /** Opens the node as a standby with no leader yet. */
  static async open(parts: ClusterNodeParts): Promise<ClusterNode> {
    const node = new ClusterNode(parts);
    node.#termSeen = await _readTerm(parts.config.dataDir);
    if (await stateRebuildNeeded(parts.config.dataDir)) {
      // A rebuild cut short: what it left is discarded; the next leader known serves a snapshot.
      await discardState(parts.config.dataDir);
      const log = await readLogPosition(parts.config, parts.logger);
      node.#rebuild = { durable_lsn: log.currentLsn, last_term: log.lastTerm };
      node.#lastRecordTerm = log.lastTerm;
      parts.logger.warn("cluster.state_rebuild_pending", { durable_lsn: log.currentLsn });
    } else {
      await node.#openStandby();
    }
    return node;
  }

  /** Serves a request in the current mode; 503 while switching. */
  fetch = (request: Request): Response | Promise<Response> => {
    const mode = this.#mode;
    if (!mode || !this.#ready) {
      return Response.json({ error: "unavailable", message: "switching roles; retry shortly" }, {
        status: 503,
        headers: { "retry-after": "1", "cache-control": "no-store" },
      });
    }
    return mode.fetch(request);
  };

  /** Requests are served from now on. */
  serving(): void {
    this.#ready = true;
  }

  get role(): "standby" | "leader" | undefined {
    return this.#mode?.kind;
  }

  /** The current mode's stores (tests and the status line). */
  get opened(): OpenedServing | undefined {
    return this.#mode?.opened;
  }

  /** What the `ClusterMember` asks of this node. */
  readonly hooks: MemberHooks = {
    position: () => this.#position(),
    seeTerm: (term) => this.#seeTerm(term),
    canLead: () => this.#rebuild === undefined,
    reconcile: (history) => this.#serial(() => this.#reconcile(history, undefined)),
    lead: (leader, lease) => this.#serial(() => this.#lead(leader, lease)),
    follow: (leader) => this.#serial(() => this.#follow(leader)),
  };

  /** Shutdown: the follower first, then the stores, with the server as `closeServing` does. */
  async close(server: Listener | undefined): Promise<void> {
    this.#stopping.abort();
    clearTimeout(this.#rebuildRetry);
    await this.#switching;
    this.#ready = false;
    const mode = this.#mode;
    this.#mode = undefined;
    if (!mode) return;
    this.#failoverSlots.stopPublishing();
    await this.#stopFollower(mode);
    if (server) await closeServing(mode.opened, server, this.#parts.logger);
    else await closeStores(mode.opened);
  }

  #serial(step: () => Promise<void>): Promise<void> {
    const run = this.#switching.then(step);
    this.#switching = run.catch(() => undefined);
    return run;
  }

  #position(): MemberPosition {
    const spool = this.#mode?.opened.spool;
    const follower = this.#mode?.follower;
    if (!this.#mode && this.#rebuild) {
      return { ...this.#rebuild, timeline: this.#leader?.timeline ?? 0 };
    }
    return {
      durable_lsn: spool?.currentLsn() ?? 0,
      last_term: follower
        ? Math.max(follower.lastFrameTerm, this.#lastRecordTerm)
        : this.#lastRecordTerm,
      timeline: this.#leader?.timeline ?? 0,
    };
  }

  async #seeTerm(term: number): Promise<void> {
    if (term <= this.#termSeen) return;
    this.#termSeen = term;
    this.#mode?.follower?.seeTerm(term);
    const path = joinPath(this.#parts.config.dataDir, TERM_FILE);
    await writeFileAtomic(denoFileSystem(), path, new TextEncoder().encode(`${term}\n`));
  }

  /**
   * Truncates the log past where it leaves the history; the state is rebuilt from the log, or,
   * when the log no longer starts at LSN 1, from `leader`'s snapshot (pending while none is known).
   */
  async #reconcile(
    history: readonly TimelineEntry[],
    leader: LeaderRecord | undefined,
  ): Promise<void> {
    if (history.length > 0) this.#history = history;
    if (history.length > 0 && (this.#mode || this.#rebuild)) {
      const position = this.#position();
      const check = checkPosition({ lsn: position.durable_lsn, term: position.last_term }, history);
      if (!check.onHistory) await this.#truncate(this.#mode, check.forkLsn);
    }
    if (this.#rebuild && leader) await this.#rebuildState(leader);
  }

  async #truncate(mode: _Mode | undefined, forkLsn: number): Promise<void> {
    const { logger, config } = this.#parts;
    if (mode) {
      await this.#stopFollower(mode);
      await closeStores(mode.opened);
      this.#mode = undefined;
    }
    this.#edgeSafeLsn = Math.min(this.#edgeSafeLsn, forkLsn);
    const cut = await truncateNodeLog(config, forkLsn, logger);
    logger.warn("cluster.truncated", {
      fork_lsn: forkLsn,
      ...cut.dropped,
      oldest_lsn: cut.oldestLsn,
    });
    if (cut.oldestLsn <= 1 && !this.#rebuild) {
      await this.#openStandby();
      return;
    }
    // The log cannot rebuild the state: the marker goes first, so a crash keeps the stores shut.
    await markStateRebuildNeeded(config.dataDir);
    this.#rebuild = { durable_lsn: cut.currentLsn, last_term: cut.lastTerm };
    this.#lastRecordTerm = cut.lastTerm;
  }

  /**
   * Loads `leader`'s snapshot as this node's state, then opens the stores as a standby: the
   * follower fetches the log from where it stands, and the applier goes on from the snapshot's
   * start once the log reaches it. A failure is logged and tried again after
   * `STATE_REBUILD_RETRY_MS` while `leader` still leads, the stores staying shut meanwhile.
   */
  async #rebuildState(leader: LeaderRecord): Promise<void> {
    const { config, logger } = this.#parts;
    try {
      const rebuilt = await rebuildStateFromLeader(config, leader.url, {
        logger,
        signal: this.#stopping.signal,
      });
      this.#rebuild = undefined;
      logger.info("cluster.state_rebuilt", { ...rebuilt, leader: leader.node_id });
    } catch (error) {
      if (this.#stopping.signal.aborted) return;
      // Not thrown: the member calls `follow` once per leader, so this node retries by itself.
      logger.warn("cluster.state_rebuild_failed", {
        leader: leader.node_id,
        error: (error as Error).message,
        retry_ms: STATE_REBUILD_RETRY_MS,
      });
      clearTimeout(this.#rebuildRetry);
      this.#rebuildRetry = setTimeout(() => {
        if (this.#leader !== leader || !this.#rebuild) return;
        this.#serial(() => this.#follow(leader)).catch(() => undefined);
      }, STATE_REBUILD_RETRY_MS);
      return;
    }
    await this.#openStandby();
  }

  async #lead(leader: LeaderRecord, lease: LeaseKeeper): Promise<void> {
    const { config, logger, events, others, auth } = this.#parts;
    this.#leader = leader;
    await this.#readHistory();
    await this.#closeMode();
    const mirrored = await this.#failoverSlots.toAdopt();
    const opened = await openServing({ ...config, term: leader.term }, logger, {
      floor: parseCommitPolicy(config.commitPolicy),
      events,
      cluster: { members: others },
      positionCheck: (position) => this.#checkPosition(position),
    });
    // Adopted before retention's first pass can prune what they pin (SPEC.md 13.4).
    const members = new Set([...others, config.nodeId!]);
    await this.#failoverSlots.adopt(opened.primary, mirrored, {
      forkLsn: leader.fork_lsn,
      members,
    });
    this.#failoverSlots.startPublishing(opened.primary, { leader, members });
    const mode: _Mode = { kind: "leader", opened, fetch: () => new Response(), lease };
    // Fenced past the lease's deadline, and for good once this mode is closed (a step-down).
    const fence = () => {
      if (!lease.holds() || this.#mode !== mode) throw new NotLeaderError();
    };
    const app = servingApp(config, logger, opened, {
      auth,
      isReady: () => this.#ready && opened.spool.isWritable(),
      relay: {
        fence,
        leader: () => this.#leaderView(),
        commits: (write) => this.#commitOutcome(write, opened),
      },
    });
    mode.fetch = app.fetch;
    this.#mode = mode;
    logger.info("cluster.leading", { term: leader.term, current_lsn: opened.spool.currentLsn() });
  }

  async #follow(leader: LeaderRecord | undefined): Promise<void> {
    const wasLeader = this.#mode?.kind === "leader";
    this.#leader = leader;
    if (wasLeader) {
      await this.#closeMode();
      await this.#openStandby();
    }
    if (leader) {
      await this.#readHistory();
      await this.#reconcile(this.#history, leader);
    }
    const mode = this.#mode;
    if (!mode) return;
    await this.#stopFollower(mode);
    if (leader) mode.follower = this.#startFollower(mode.opened, leader);
  }

  #startFollower(opened: OpenedServing, leader: LeaderRecord): LogFollower {
    const { config, logger } = this.#parts;
    const follower = new LogFollower({
      client: new FerryClient(leader.url, { token: config.replicaToken }),
      replicaId: config.nodeId!,
      region: config.region,
      upstreamUrl: leader.url,
      spool: opened.spool,
      appliedLsn: () => opened.state.appliedLsn(),
      onSlots: (slots) => this.#failoverSlots.keep(slots),
      onCommitLsn: () => opened.primary.commitAdvanced(),
      logger,
    }, this.#lastRecordTerm);
    follower.seeTerm(Math.max(this.#termSeen, leader.term));
    follower.start();
    return follower;
  }

  async #openStandby(): Promise<void> {
    const { config, logger, events, auth } = this.#parts;
    const holder: { follower?: () => LogFollower | undefined } = {};
    const opened = await openServing(config, logger, {
      floor: { kind: "local" },
      events,
      mirror: { term: () => Math.max(this.#termSeen, this.#leader?.term ?? 0) },
      positionCheck: (position) => this.#checkPosition(position),
      pruneFloor: this.#failoverSlots.pruneFloor,
      edgeCap: () => this.#standbyEdgeCap(),
    });
    this.#lastRecordTerm = await lastRecordTerm(opened.spool);
    const app = servingApp(config, logger, opened, {
      auth,
      isReady: () => this.#ready,
      relay: {
        writesGoTo: () => this.#leader?.url ?? null,
        upstream: () => ({ ...holder.follower?.()?.status() }),
        servesLog: true,
        leader: () => this.#leaderView(),
        commits: (write) => this.#commitOutcome(write, undefined),
      },
    });
    const mode: _Mode = { kind: "standby", opened, fetch: app.fetch };
    holder.follower = () => mode.follower;
    this.#mode = mode;
  }

  async #closeMode(): Promise<void> {
    const mode = this.#mode;
    this.#mode = undefined;
    if (!mode) return;
    this.#failoverSlots.stopPublishing();
    await this.#stopFollower(mode);
    mode.opened.primary.streams.endAll("fenced");
    mode.opened.primary.waiter.close();
    await closeStores(mode.opened);
  }

  /** Stops the follower, keeping the term of the newest frame it kept (an election's answer). */
  async #stopFollower(mode: _Mode): Promise<void> {
    this.#raiseEdgeSafeLsn(); // what it knew while following stays safe for edges
    const follower = mode.follower;
    mode.follower = undefined;
    if (!follower) return;
    await follower.stop();
    if (mode.opened.spool.currentLsn() > 0) {
      this.#lastRecordTerm = Math.max(this.#lastRecordTerm, follower.lastFrameTerm);
    }
  }

  /**
   * Reads the timeline history from etcd and keeps a copy in `<data>/wal/timelines.json` (SPEC.md
   * 13.4: a local cache, for an operator reading the data directory; etcd stays the source).
   */
  async #readHistory(): Promise<void> {
    this.#history = await this.#parts.coordinator.readTimelines();
    const path = joinPath(this.#parts.config.dataDir, "wal", TIMELINES_CACHE_FILE);
    const bytes = new TextEncoder().encode(`${JSON.stringify(this.#history)}\n`);
    await writeFileAtomic(denoFileSystem(), path, bytes).catch((error) => {
      this.#parts.logger.warn("cluster.timelines_cache_failed", {
        error: (error as Error).message,
      });
    });
  }

  /** A pull's position against the history (SPEC.md 13.4): off it, 409 `timeline_diverged`. */
  #checkPosition(position: { lsn: number; term: number }): void {
    if (this.#history.length === 0) return;
    const check = checkPosition(position, this.#history);
    if (!check.onHistory) throw new TimelineDivergedError(position, check.forkLsn, check.timeline);
  }

  /**
   * What became of a write: the leader knows its commit LSN; a standby knows only what the history
   * says (lost, or unknown: ask the leader).
   */
  #commitOutcome(write: { term: number; lsn: number }, leading: OpenedServing | undefined) {
    const commitLsn = leading
      ? leading.primary.waiter.commitLsn(leading.spool.currentLsn()) ?? 0
      : 0;
    const outcome = commitOutcome(write, {
      history: this.#history,
      leaderTerm: this.#leader?.term ?? 0,
      commitLsn,
    });
    return { outcome, leader: this.#leaderView() };
  }

  /**
   * The standby's edge cap (`#edgeSafeLsn`), raised while it follows a leader after reconciling:
   * with three members a frame durable here and on the leader is on a majority, so all it holds;
   * with more, up to the commit LSN the leader's control records give.
   */
  #standbyEdgeCap(): number {
    this.#raiseEdgeSafeLsn();
    return Math.min(this.#edgeSafeLsn, this.#mode?.opened.spool.currentLsn() ?? 0);
  }

  /** Raises `#edgeSafeLsn` to what a following standby knows is on a majority (never lowers it). */
  #raiseEdgeSafeLsn(): void {
    const mode = this.#mode;
    if (mode?.kind !== "standby" || !mode.follower) return;
    const durable = mode.opened.spool.currentLsn();
    const known = this.#parts.others.size <= 2
      ? durable
      : Math.min(durable, mode.follower.upstreamCommitLsn);
    this.#edgeSafeLsn = Math.max(this.#edgeSafeLsn, known);
  }

  #leaderView(): { node_id: string; url: string; term: number } | null {
    const leader = this.#leader;
    return leader ? { node_id: leader.node_id, url: leader.url, term: leader.term } : null;
  }
}

async function _readTerm(dataDir: string): Promise<number> {
  try {
    return Number((await Deno.readTextFile(joinPath(dataDir, TERM_FILE))).trim()) || 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}
