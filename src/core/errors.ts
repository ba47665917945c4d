/**
 * Domain errors: small classes with a machine `code`. The HTTP layer maps codes to statuses in one
 * place (`app.onError`); everything else lets them travel. Programmer errors are assertions, not
 * these classes.
 *
 * @module
 */

/** Details that travel with an error into its JSON body. */
export type ErrorDetails = Record<string, unknown>;

/** Base of every domain error: a stable machine code, a human message, optional details. */
export class FerryError extends Error {
  readonly code: string;
  readonly details: ErrorDetails;

  constructor(code: string, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** Bytes that do not form a valid log frame. */
export class CorruptFrameError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("corrupt_frame", message, details);
  }
}

/** Stored WAL that fails verification (a sealed segment with a bad CRC, an LSN out of order). */
export class WalCorruptionError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("wal_corrupt", message, details);
  }
}

/** The records a reader asked for were pruned. */
export class WalRemovedError extends FerryError {
  constructor(sinceLsn: number, oldestLsn: number) {
    super(
      "wal_removed",
      `records after LSN ${sinceLsn} are no longer retained; the oldest retained LSN is ${oldestLsn}`,
      { since_lsn: sinceLsn, oldest_lsn: oldestLsn },
    );
  }
}

/** The disk is full: nothing was written, earlier records are intact. */
export class DiskFullError extends FerryError {
  constructor(message = "the disk is full; nothing was written") {
    super("insufficient_storage", message);
  }
}

/** Too much is queued; the caller should retry later. */
export class OverloadedError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("overloaded", message, details);
  }
}

/** The component is closed, closing, or stopped after a fatal I/O error. */
export class UnavailableError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("unavailable", message, details);
  }
}

/** A setting has a bad value; start-up stops with this message. */
export class ConfigError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("bad_config", message, details);
  }
}

/**
 * Start-up cannot go on for a reason one setting fixes: a port in use, a data directory that is
 * missing and cannot be created, read-only or a file, a tokens or PEM file that cannot be read or
 * does not parse. `details.flag` names the setting to change; ferry exits 2.
 */
export class StartupError extends FerryError {
  constructor(code: string, message: string, details: { flag: string } & ErrorDetails) {
    super(code, message, details);
  }
}

/** True when an I/O error means the disk (or quota) is full. */
export function isDiskFullError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** Invalid input from a client: nothing was changed. */
export class BadRequestError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("bad_request", message, details);
  }
}

/** A slot catalog file that does not decode (RDSLOT01). */
export class CatalogFormatError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("catalog_corrupt", message, details);
  }
}

/** Something named by the request does not exist. */
export class NotFoundError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("not_found", message, details);
  }
}

/**
 * A replica cannot catch up from the log and must load a snapshot (HTTP 409
 * `rebootstrap_required`). `reason` is the slot's invalidation reason, or why the position cannot
 * be served (`wal-removed`, `replica-ahead`).
 */
export class RebootstrapRequiredError extends FerryError {
  constructor(reason: string, details: { oldest_lsn: number; message?: string } & ErrorDetails) {
    const { message, ...rest } = details;
    super(
      "rebootstrap_required",
      message ?? `the replica must re-bootstrap from a snapshot (${reason})`,
      { invalidation_reason: reason, snapshot_url: "/v1/snapshot", ...rest },
    );
  }
}

/** The replica's declared term differs from the primary's (HTTP 409 `stale_term` / `term_ahead`). */
export class TermMismatchError extends FerryError {
  constructor(replicaTerm: number, primaryTerm: number) {
    const behind = replicaTerm < primaryTerm;
    super(
      behind ? "stale_term" : "term_ahead",
      behind
        ? `the replica's term ${replicaTerm} is older than the primary's term ${primaryTerm}`
        : `the replica's term ${replicaTerm} is ahead of the primary's term ${primaryTerm}`,
      { term: primaryTerm, replica_term: replicaTerm },
    );
  }
}

/** A receiver's upstream answers with a term older than one the receiver has seen (SPEC.md 13.4). */
export class StaleUpstreamError extends FerryError {
  constructor(upstreamTerm: number, termSeen: number) {
    super(
      "stale_term",
      `the upstream is at term ${upstreamTerm}, older than ${termSeen}`,
      { term: upstreamTerm, term_seen: termSeen },
    );
  }
}

/** No valid credentials (HTTP 401). */
export class UnauthorizedError extends FerryError {
  constructor(message = "a valid bearer token is required") {
    super("unauthorized", message);
  }
}

/** Valid credentials without the right (HTTP 403). */
export class ForbiddenError extends FerryError {
  constructor(message: string) {
    super("forbidden", message);
  }
}

/** A byte range that starts past the end of what is served (HTTP 416); `size` is its length. */
export class RangeNotSatisfiableError extends FerryError {
  constructor(size: number) {
    super("range_not_satisfiable", `no byte of the range is within the ${size} bytes served`, {
      size,
    });
  }
}

/** A record or request above its size limit (HTTP 413). */
export class PayloadTooLargeError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("payload_too_large", message, details);
  }
}

/** A body in a media type the route does not take (HTTP 415); the message names those it takes. */
export class UnsupportedMediaTypeError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("unsupported_media_type", message, details);
  }
}

/** Still starting, or draining for shutdown (HTTP 503). */
export class NotReadyError extends FerryError {
  constructor(message = "ferry is starting or draining") {
    super("not_ready", message);
  }
}

/**
 * A Deno KV file (SQLite underneath) that fails to open or to read at start-up: a garbage header
 * ("file is not a database"), a truncated file or damaged pages ("database disk image is
 * malformed"), a stored value that no longer decodes, or a state older than the spool can rebuild.
 */
export class KvCorruptError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("kv_corrupt", message, details);
  }
}

/**
 * True when `error`, thrown by `Deno.openKv` or by a first read of the store it opened, reports a
 * damaged file. Deno KV gives SQLite's errors no class of their own (a plain `Error` at open; a
 * `TypeError`, `RangeError`, `Deno.errors.InvalidData` or `Deno.errors.UnexpectedEof` on a read),
 * so only a missing permission and ferry's own errors are told apart: use it around those calls
 * only, never around other I/O.
 */
export function isKvDamageError(error: unknown): error is Error {
  return error instanceof Error && !(error instanceof FerryError) &&
    !(error instanceof Deno.errors.NotCapable) && !(error instanceof Deno.errors.PermissionDenied);
}

/** The data directory holds another timeline than the one configured (start-up refuses). */
export class TimelineMismatchError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("timeline_mismatch", message, details);
  }
}

/** Both persisted copies are unreadable: ferry refuses to start rather than guess. */
export class SlotStoreCorruptError extends FerryError {
  constructor(message: string) {
    super("slots_corrupt", message);
  }
}

/** Too many snapshots are streaming (HTTP 503 with Retry-After). */
export class SnapshotBusyError extends FerryError {
  constructor(concurrencyMax: number) {
    super("snapshot_busy", `${concurrencyMax} snapshots are already streaming; retry shortly`);
  }
}

/** The wait for `min_lsn` ended before the state applied it (HTTP 503 with Retry-After). */
export class LsnNotAppliedError extends FerryError {
  constructor(appliedLsn: number, minLsn: number) {
    super("lsn_not_applied", `LSN ${minLsn} is not applied yet (applied: ${appliedLsn})`, {
      applied_lsn: appliedLsn,
      min_lsn: minLsn,
    });
  }
}

// ---- errors of the HTTP client (FerryClient) ----

/** The server answered with a status other than 2xx. `body` is its JSON error body. */
export class FerryHttpError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** The body's `error` code, or `http_<status>` when the body was not a JSON error. */
  readonly code: string;
  /** The JSON error body with its details (snake_case, as sent), e.g. `first_lsn` of a 504. */
  readonly body: Record<string, unknown>;
  /** `Retry-After` in ms, when the server sent one. */
  readonly retryAfterMs?: number;

  constructor(
    status: number,
    body: Record<string, unknown>,
    options: { retryAfterMs?: number; request?: string } = {},
  ) {
    const code = typeof body.error === "string" ? body.error : `http_${status}`;
    const message = typeof body.message === "string" ? body.message : `HTTP ${status}`;
    super(`${options.request ? `${options.request}: ` : ""}${status} ${code}: ${message}`);
    this.name = "FerryHttpError";
    this.status = status;
    this.code = code;
    this.body = body;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/** A 2xx answer without the documented shape, headers or size. */
export class FerryResponseError extends FerryError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("bad_response", message, details);
  }
}

/**
 * The server answered a streaming pull (`stream=1`) with a plain pull: it does not stream (an older
 * primary, or something between that drops the query). The client falls back to long-polls.
 */
export class StreamRefusedError extends FerryError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("stream_refused", message, details);
  }
}

/** A snapshot stream line that is malformed, longer than the limit, or out of order. */
export class SnapshotFormatError extends FerryError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("snapshot_format", message, details);
  }
}

/** etcd did not answer, or refused (a cluster node cannot renew, read or elect). */
export class EtcdUnavailableError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("etcd_unavailable", message, details);
  }
}

/**
 * Frames handed to a spool that keeps another node's log (`Spool.appendFrames`) do not follow its
 * last LSN one by one: nothing of them is written, and the follower resumes from the spool's LSN.
 */
export class LsnGapError extends FerryError {
  constructor(expectedLsn: number, gotLsn: number) {
    super("lsn_gap", `expected LSN ${expectedLsn} next, got ${gotLsn}; nothing was written`, {
      expected_lsn: expectedLsn,
      got_lsn: gotLsn,
    });
  }
}

/** A cluster node with no leader to send writes to: an election is under way (SPEC.md 13.4). */
export class NoLeaderError extends FerryError {
  constructor(message = "no leader right now (an election is under way); retry shortly") {
    super("no_leader", message);
  }
}

/** A leader past its fencing deadline (SPEC.md 13.4): it answers no write and serves no frame. */
export class NotLeaderError extends FerryError {
  constructor(message = "this node may no longer act as the leader; retry shortly") {
    super("not_leader", message);
  }
}

/**
 * A spool cannot be cut back to the LSN asked for (`Spool.truncateAfter`): the records up to it
 * are no longer retained, so the node must rebuild from a snapshot instead.
 */
export class WalTruncateError extends FerryError {
  constructor(afterLsn: number, oldestLsn: number) {
    super(
      "wal_truncate",
      `cannot truncate the log after LSN ${afterLsn}: the oldest retained LSN is ${oldestLsn}; ` +
        "rebuild from a snapshot instead",
      { after_lsn: afterLsn, oldest_lsn: oldestLsn },
    );
  }
}

/**
 * A write durable on a leader that stepped down before its commit wait ended (SPEC.md 13.4): whether
 * it survives is not known yet. `GET /v1/commits/:term/:lsn` tells, later.
 */
export class CommitUnknownError extends FerryError {
  constructor(write: { term: number; firstLsn: number; lastLsn: number }) {
    super(
      "commit_unknown",
      `LSNs ${write.firstLsn}..${write.lastLsn} of term ${write.term} were durable here, but this ` +
        `node stepped down before they were committed; ask GET /v1/commits/${write.term}/${write.lastLsn}`,
      { term: write.term, first_lsn: write.firstLsn, last_lsn: write.lastLsn },
    );
  }
}

/** A position off the leader's timeline history (SPEC.md 13.4): records past `fork_lsn` are gone. */
export class TimelineDivergedError extends FerryError {
  constructor(position: { lsn: number; term: number }, forkLsn: number, timeline: number) {
    super(
      "timeline_diverged",
      `LSN ${position.lsn} of term ${position.term} is not on the leader's history, which forked ` +
        `at LSN ${forkLsn}`,
      { lsn: position.lsn, term: position.term, fork_lsn: forkLsn, timeline },
    );
  }
}

/**
 * A write answered 503 `commit_unknown` that `GET /v1/commits` found lost in a failover and that
 * `FerryClient` does not send again: it was re-sent once already and that copy was lost too, or
 * (`partly`) only its first records were committed, so re-sending it whole could overwrite newer
 * values with them.
 */
export class CommitLostError extends FerryError {
  constructor(
    write: { term: number; firstLsn: number; lastLsn: number },
    options: { partly?: boolean } = {},
  ) {
    const range = `LSNs ${write.firstLsn}..${write.lastLsn} of term ${write.term}`;
    super(
      "commit_lost",
      options.partly
        ? `the first of ${range} were committed and the last lost in a failover; it was not ` +
          "re-sent: check which records are missing and send those again"
        : `${range} were lost in a failover, after this write had been re-sent once; nothing ` +
          "of it is committed",
      {
        term: write.term,
        first_lsn: write.firstLsn,
        last_lsn: write.lastLsn,
        partly: options.partly === true,
      },
    );
  }
}
