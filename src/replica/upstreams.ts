/**
 * The nodes a replica may follow (SPEC.md 13.4, leader discovery). `--primary-url` takes one URL or
 * a comma list: a cluster's members, or relays of one primary. The replica follows one node at a
 * time; after `UPSTREAM_SWITCH_FAILURES` failed steps in a row on it (refused, cut, timed out, or
 * 503 while it switches roles or has no leader), it asks every listed node's topology:
 *
 * - cluster members name the leader: the replica moves to the leader of the highest term named,
 *   and stays while none is named (an election: no node has anything new to give) or the one named
 *   is the failing node (about to lead, or not yet known dead);
 * - nodes outside a cluster name none: it moves to the next listed node whose log reaches its
 *   position (one behind it would send it to a snapshot).
 *
 * While it stays, every further failure asks again, and the replica retries at least every
 * `UPSTREAM_LOOK_MS` (`looking`), so it finds a new leader soon after one is named. With one URL
 * nothing ever moves. Moving is
 * safe because every node judges the replica's `(lsn, term)` against the same history, and an edge
 * holds only committed records, which every leader holds: it resumes where it was, or is told it
 * diverged; it never skips or repeats.
 *
 * @module
 */

import { FerryHttpError } from "../core/errors.ts";
import { UPSTREAM_SWITCH_FAILURES, UPSTREAM_TOPOLOGY_TIMEOUT_MS } from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import type { TopologyLeader } from "../client/types.ts";

/**
 * What one node's topology says: the leader it knows (null: none known; undefined: the node is
 * not a cluster member) and its own last LSN.
 */
export interface NodeView {
  leader: TopologyLeader | null | undefined;
  currentLsn: number;
}

/** Asks one node for its `NodeView`; throws when it cannot answer. */
export type ViewOf = (url: string, signal: AbortSignal) => Promise<NodeView>;

/** Where a replica follows from, and where it moves when that node fails (module comment). */
export class Upstreams {
  readonly #urls: readonly string[];
  readonly #viewOf: ViewOf;
  readonly #logger: Logger;
  #current: string;
  #failures = 0;
  #switches = 0;

  /** `urls`: the listed nodes, the first followed first (at least one). */
  constructor(urls: readonly string[], parts: { viewOf: ViewOf; logger: Logger }) {
    if (urls.length === 0) throw new RangeError("a replica needs at least one upstream URL");
    this.#urls = urls.map(_trimSlash);
    this.#current = this.#urls[0]!;
    this.#viewOf = parts.viewOf;
    this.#logger = parts.logger;
  }

  /** The node followed now. */
  get current(): string {
    return this.#current;
  }

  /** How many times the replica moved to another node. */
  get switches(): number {
    return this.#switches;
  }

  /** True while the node followed keeps failing and another may be moved to (asked each failure). */
  get looking(): boolean {
    return this.#urls.length > 1 && this.#failures >= UPSTREAM_SWITCH_FAILURES;
  }

  /** A step on the current node worked: its failures are forgiven. */
  succeeded(): void {
    this.#failures = 0;
  }

  /**
   * A step on the current node failed with `error`; the replica stands at `position`. Returns the
   * node to follow from now on when the replica moves (see the module comment), else undefined.
   */
  async failed(
    error: unknown,
    parts: { position: number; signal: AbortSignal },
  ): Promise<string | undefined> {
    if (this.#urls.length < 2 || !isNodeFailure(error)) return undefined;
    this.#failures += 1;
    if (this.#failures < UPSTREAM_SWITCH_FAILURES) return undefined;
    const next = await this.#choose(parts.position, parts.signal);
    if (next === undefined || next === this.#current) return undefined;
    this.#logger.warn("replica.upstream_switched", {
      from: this.#current,
      to: next,
      failures: this.#failures,
      error: error instanceof Error ? error.message : String(error),
    });
    this.#current = next;
    this.#failures = 0;
    this.#switches += 1;
    return next;
  }

  /** Where to move (see the module comment), or undefined to stay. */
  async #choose(position: number, signal: AbortSignal): Promise<string | undefined> {
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(UPSTREAM_TOPOLOGY_TIMEOUT_MS)]);
    const views = await Promise.all(
      this.#urls.map((url) => this.#viewOf(url, timeout).catch(() => undefined)),
    );
    if (views.some((view) => view !== undefined && view.leader !== undefined)) {
      const named = views
        .map((view) => view?.leader)
        .filter((leader): leader is TopologyLeader => leader !== null && leader !== undefined)
        .sort((a, b) => b.term - a.term)[0];
      return named && _trimSlash(named.url);
    }
    const at = this.#urls.indexOf(this.#current);
    for (let step = 1; step <= this.#urls.length; step++) {
      const index = (at + step) % this.#urls.length;
      const view = views[index];
      if (this.#urls[index] === this.#current || view === undefined) continue;
      if (view.currentLsn >= position) return this.#urls[index];
    }
    return undefined;
  }
}

/**
 * True for a failure of the node rather than of the replica's position: no answer at all (refused,
 * cut, timed out) or 503 (switching roles, no leader, shutting down). A 409 or 4xx is an answer
 * about the replica, the same from every node.
 */
export function isNodeFailure(error: unknown): boolean {
  if (error instanceof FerryHttpError) return error.status === 503;
  return error instanceof TypeError || error instanceof DOMException ||
    _CONNECTION_ERRORS.some((kind) => error instanceof kind);
}

/** What a dead or unreachable node's socket throws besides fetch's `TypeError`. */
const _CONNECTION_ERRORS = [
  Deno.errors.ConnectionRefused,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.BrokenPipe,
  Deno.errors.UnexpectedEof,
  Deno.errors.TimedOut,
  Deno.errors.Interrupted,
];

function _trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
