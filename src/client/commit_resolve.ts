/**
 * How `FerryClient.write()` gets through a failover (SPEC.md 13.4), as control flow over injected
 * calls (the write, the commit question, a sleep and a clock), so tests drive it without waiting.
 *
 * - 503 `no_leader` (an election): nothing was appended, so the write is sent again after
 *   `Retry-After`, at most `WRITE_NO_LEADER_RETRIES_MAX` times.
 * - 503 `commit_unknown` (the leader stepped down during the commit wait): the records were durable
 *   on that node, and a blind re-send could overwrite a newer value, so `GET /v1/commits` is asked
 *   (here, then at the leader it names) with a doubling backoff within `COMMIT_RESOLVE_BUDGET_MS`
 *   until it says `committed` (the answer is made from the 503: `resolvedWriteOf`) or `lost` (the
 *   write is sent again, once). Still `unknown` at the end: `CommitUnknownError`.
 *
 * @module
 */

import {
  CommitLostError,
  CommitUnknownError,
  FerryHttpError,
  FerryResponseError,
} from "../core/errors.ts";
import {
  COMMIT_RESOLVE_BUDGET_MS,
  COMMIT_RESOLVE_DELAY_MS_MAX,
  COMMIT_RESOLVE_DELAY_MS_MIN,
  COMMIT_RESOLVE_ROUNDS_MAX,
  WRITE_NO_LEADER_RETRIES_MAX,
  WRITE_RETRY_AFTER_MS_MAX,
} from "../core/client_limits.ts";
import { RETRY_AFTER_S } from "../core/limits.ts";
import { fieldReader, quote, writeResponseOf } from "./responses.ts";
import type {
  CommitFate,
  CommitOutcomeResponse,
  CommitResult,
  WriteOptions,
  WriteRecord,
  WriteResponse,
} from "./types.ts";

const MS_PER_SECOND = 1000;

/** Where a write answered 503 `commit_unknown` was durable: LSNs `firstLsn..lastLsn` of `term`. */
export interface PendingCommit {
  term: number;
  firstLsn: number;
  lastLsn: number;
  /** The 503 body's `timeline`, when it has one. */
  timeline?: number;
}

/** What `writeRecovering` calls: the client's own requests, its sleep and its clock. */
export interface WriteCalls {
  /** `POST /v1/records` once: the JSON of a 2xx answer; any other throws `FerryHttpError`. */
  post(json: Record<string, unknown>, signal?: AbortSignal): Promise<Record<string, unknown>>;
  /** `GET /v1/commits/:term/:lsn` at `url`, or at the client's base URL when it is undefined. */
  ask(term: number, lsn: number, url?: string): Promise<CommitOutcomeResponse>;
  /** Waits `ms`; may resolve early when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** A monotonic clock in ms. */
  now(): number;
  /** The client's base URL: a leader found there is not asked a second time. */
  baseUrl: string;
}

/** How one send of a write ended: with an answer, or found lost after a `commit_unknown`. */
type _Settled =
  | { kind: "answered"; response: WriteResponse }
  | { kind: "lost"; pending: PendingCommit };

/**
 * Writes `records` through `calls.post`, past `no_leader` and `commit_unknown` answers (see the
 * module's JSDoc); a write found lost is sent again once, the same records with the same options.
 * Throws `CommitUnknownError` when its fate stays unknown, `CommitLostError` when it is lost again
 * or only part of it was committed, and any other error of `post` or `ask` as it came.
 */
export async function writeRecovering(
  calls: WriteCalls,
  records: readonly WriteRecord[],
  options: WriteOptions = {},
): Promise<WriteResponse> {
  const json = { records, commit_policy: options.commitPolicy, timeout_ms: options.timeoutMs };
  const send = async () => writeResponseOf(await calls.post(json, options.signal));
  const first = await _sendSettled(send, calls, options);
  if (first.kind === "answered") return first.response;
  const second = await _sendSettled(send, calls, options);
  if (second.kind === "answered") return second.response;
  throw new CommitLostError(second.pending);
}

/** One write: sent past `no_leader`, and its `commit_unknown` settled (unless turned off). */
async function _sendSettled(
  send: () => Promise<WriteResponse>,
  calls: WriteCalls,
  options: WriteOptions,
): Promise<_Settled> {
  let pending: PendingCommit | undefined;
  try {
    return { kind: "answered", response: await _sendPastNoLeader(send, calls, options.signal) };
  } catch (error) {
    pending = options.resolveCommitUnknown === false ? undefined : pendingCommitOf(error);
    if (pending === undefined) throw error;
  }
  const startedMs = calls.now();
  const fate = await resolveCommit(pending, calls, options.signal);
  if (fate === "lost") return { kind: "lost", pending };
  const waitedMs = Math.max(0, calls.now() - startedMs);
  const response = resolvedWriteOf(pending, { commitPolicy: options.commitPolicy, waitedMs });
  return { kind: "answered", response };
}

/** `send()`, again after `Retry-After` while it answers 503 `no_leader` (bounded). */
async function _sendPastNoLeader(
  send: () => Promise<WriteResponse>,
  calls: Pick<WriteCalls, "sleep">,
  signal?: AbortSignal,
): Promise<WriteResponse> {
  for (let retry = 1; retry <= WRITE_NO_LEADER_RETRIES_MAX; retry += 1) {
    try {
      return await send();
    } catch (error) {
      const noLeader = error instanceof FerryHttpError && error.status === 503 &&
        error.code === "no_leader";
      if (!noLeader) throw error;
      const retryAfterMs = error.retryAfterMs ?? RETRY_AFTER_S * MS_PER_SECOND;
      await calls.sleep(Math.min(retryAfterMs, WRITE_RETRY_AFTER_MS_MAX), signal);
      signal?.throwIfAborted();
    }
  }
  return await send();
}

/**
 * The term and LSNs of a 503 `commit_unknown`, or undefined for any other error. A body without
 * them is a `FerryResponseError`.
 */
export function pendingCommitOf(error: unknown): PendingCommit | undefined {
  if (!(error instanceof FerryHttpError)) return undefined;
  if (error.status !== 503 || error.code !== "commit_unknown") return undefined;
  const field = fieldReader(error.body, "write: 503 commit_unknown");
  const pending: PendingCommit = {
    term: field.uint("term"),
    firstLsn: field.uint("first_lsn"),
    lastLsn: field.uint("last_lsn"),
  };
  if (pending.firstLsn < 1 || pending.firstLsn > pending.lastLsn) {
    throw new FerryResponseError(
      `write: 503 commit_unknown with LSNs ${pending.firstLsn}..${pending.lastLsn}`,
    );
  }
  const timeline = error.body.timeline;
  if (typeof timeline === "number" && Number.isSafeInteger(timeline) && timeline >= 1) {
    pending.timeline = timeline;
  }
  return pending;
}

/**
 * The fate of a pending write: that of its last LSN (a committed LSN has every one before it
 * committed). When the last is lost, the first decides: lost too means nothing of the write
 * survived (safe to send again); committed means only a prefix did, and re-sending the whole
 * write could overwrite newer values with its committed records, so that is `CommitLostError`.
 * One budget of `COMMIT_RESOLVE_BUDGET_MS` covers both; past it, `CommitUnknownError`.
 */
export async function resolveCommit(
  pending: PendingCommit,
  calls: Omit<WriteCalls, "post">,
  signal?: AbortSignal,
): Promise<"committed" | "lost"> {
  const deadlineMs = calls.now() + COMMIT_RESOLVE_BUDGET_MS;
  const last = await _settleLsn(pending, pending.lastLsn, { calls, deadlineMs, signal });
  if (last === "committed" || pending.firstLsn === pending.lastLsn) return last;
  const first = await _settleLsn(pending, pending.firstLsn, { calls, deadlineMs, signal });
  if (first === "lost") return "lost";
  throw new CommitLostError(pending, { partly: true });
}

interface _Round {
  calls: Omit<WriteCalls, "post">;
  deadlineMs: number;
  signal?: AbortSignal;
}

/** Asks about one LSN, round after round with a doubling wait, until the answer is final. */
async function _settleLsn(
  pending: PendingCommit,
  lsn: number,
  round: _Round,
): Promise<"committed" | "lost"> {
  const { calls, deadlineMs, signal } = round;
  let delayMs = COMMIT_RESOLVE_DELAY_MS_MIN;
  let leaderUrl: string | undefined;
  for (let count = 1; count <= COMMIT_RESOLVE_ROUNDS_MAX; count += 1) {
    signal?.throwIfAborted();
    const answer = await _askRound({ term: pending.term, lsn }, leaderUrl, calls);
    if (answer.outcome !== "unknown") return answer.outcome;
    leaderUrl = answer.leaderUrl;
    const leftMs = deadlineMs - calls.now();
    if (leftMs <= 0 || count === COMMIT_RESOLVE_ROUNDS_MAX) break;
    await calls.sleep(Math.min(delayMs, leftMs), signal);
    delayMs = Math.min(delayMs * 2, COMMIT_RESOLVE_DELAY_MS_MAX);
  }
  signal?.throwIfAborted();
  throw new CommitUnknownError(pending);
}

/**
 * One round: ask the client's node; while the fate is unknown, ask the leader it names (or the
 * one an earlier round named) when that is another node. A node that cannot answer now counts as
 * unknown.
 */
async function _askRound(
  write: { term: number; lsn: number },
  knownLeaderUrl: string | undefined,
  calls: Omit<WriteCalls, "post">,
): Promise<{ outcome: CommitFate; leaderUrl?: string }> {
  const here = await _askOrUnknown(write, undefined, calls);
  if (here !== undefined && here.outcome !== "unknown") return { outcome: here.outcome };
  const leaderUrl = _leaderUrlOf(here) ?? knownLeaderUrl;
  if (leaderUrl === undefined || _sameNode(leaderUrl, calls.baseUrl)) {
    return { outcome: "unknown", leaderUrl };
  }
  const there = await _askOrUnknown(write, leaderUrl, calls);
  return { outcome: there?.outcome ?? "unknown", leaderUrl: _leaderUrlOf(there) ?? leaderUrl };
}

/** `calls.ask`, undefined when the node is unreachable or answers 5xx (down, starting, a proxy). */
async function _askOrUnknown(
  write: { term: number; lsn: number },
  url: string | undefined,
  calls: Omit<WriteCalls, "post">,
): Promise<CommitOutcomeResponse | undefined> {
  try {
    return await calls.ask(write.term, write.lsn, url);
  } catch (error) {
    if (error instanceof TypeError) return undefined; // fetch's network failure
    if (error instanceof FerryHttpError && error.status >= 500) return undefined;
    throw error;
  }
}

/** The leader's URL an answer names, when it names one that parses. */
function _leaderUrlOf(answer: CommitOutcomeResponse | undefined): string | undefined {
  const url = answer?.leader?.url;
  return url !== undefined && URL.canParse(url) ? url : undefined;
}

/** True when both URLs name the same server root (origin and path, trailing slashes aside). */
function _sameNode(url: string, otherUrl: string): boolean {
  const root = (text: string) => {
    const parsed = new URL(text);
    return `${parsed.origin}${parsed.pathname.replace(/\/+$/, "")}`;
  };
  return root(url) === root(otherUrl);
}

/**
 * The answer of a write found committed after a 503 `commit_unknown` (`WriteResponse` says what is
 * filled in): LSNs and term from the 503, and for the commit what "committed" proves of the policy
 * sent (a majority of the cluster holds the records).
 */
export function resolvedWriteOf(
  pending: PendingCommit,
  options: { commitPolicy?: string; waitedMs: number },
): WriteResponse {
  const policy = options.commitPolicy?.trim() ?? "";
  let outcome: CommitResult["outcome"] = "timed_out";
  if (policy === "quorum") outcome = "reached";
  else if (policy === "local") outcome = "not_required";
  return {
    firstLsn: pending.firstLsn,
    lastLsn: pending.lastLsn,
    term: pending.term,
    timeline: pending.timeline ?? 0,
    commit: {
      policy,
      outcome,
      durableReplicas: [],
      regions: [],
      waitedMs: options.waitedMs,
      required: 0,
      observed: 0,
    },
    resolvedAfterStepDown: true,
  };
}

/** The `CommitOutcomeResponse` of `GET /v1/commits/:term/:lsn`, checked against what was asked. */
export function commitOutcomeOf(
  body: Record<string, unknown>,
  asked: { term: number; lsn: number },
): CommitOutcomeResponse {
  const field = fieldReader(body, "commitOutcome");
  const outcome = field.string("outcome");
  if (outcome !== "committed" && outcome !== "lost" && outcome !== "unknown") {
    throw new FerryResponseError(`commitOutcome: unknown outcome ${quote(outcome)}`);
  }
  const term = field.uint("term");
  const lsn = field.uint("lsn");
  if (term !== asked.term || lsn !== asked.lsn) {
    throw new FerryResponseError(
      `commitOutcome: asked about ${asked.term}/${asked.lsn}, answered about ${term}/${lsn}`,
    );
  }
  let leader: CommitOutcomeResponse["leader"] = null;
  if (body.leader !== null) {
    const named = fieldReader(field.object("leader"), "commitOutcome: leader");
    leader = {
      nodeId: named.string("node_id"),
      url: named.string("url"),
      term: named.uint("term"),
    };
  }
  return { term, lsn, outcome, leader };
}
