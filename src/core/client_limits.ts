/**
 * The bounds of `FerryClient`'s writes across a failover (SPEC.md 13.4), unit last. Kept beside
 * `limits.ts` so that file stays readable; the same rules hold: relations asserted at load.
 *
 * @module
 */

import assert from "./assert.ts";
import { RETRY_AFTER_S } from "./limits.ts";

/** Longest a client spends settling a write answered 503 `commit_unknown` before it gives up. */
export const COMMIT_RESOLVE_BUDGET_MS = 30_000;
/** First wait between two `GET /v1/commits` rounds; each later wait doubles, up to the max. */
export const COMMIT_RESOLVE_DELAY_MS_MIN = 100;
/** Longest wait between two `GET /v1/commits` rounds. */
export const COMMIT_RESOLVE_DELAY_MS_MAX = 2_000;
/** Most `GET /v1/commits` rounds about one LSN of a write, whatever the clock says. */
export const COMMIT_RESOLVE_ROUNDS_MAX = 40;
/** Most re-sends of a write answered 503 `no_leader` (never appended, so safe to send again). */
export const WRITE_NO_LEADER_RETRIES_MAX = 10;
/** Longest `Retry-After` a client honours between two sends of a write answered `no_leader`. */
export const WRITE_RETRY_AFTER_MS_MAX = 5_000;
/**
 * The buffer a stream's body is read into (reused from chunk to chunk); a chunk larger than this
 * arrives in several reads. Deno's own chunk size for fetch bodies.
 */
export const STREAM_READ_BUFFER_BYTES = 64 * 1024;

assert(
  COMMIT_RESOLVE_DELAY_MS_MIN <= COMMIT_RESOLVE_DELAY_MS_MAX &&
    COMMIT_RESOLVE_DELAY_MS_MAX < COMMIT_RESOLVE_BUDGET_MS,
  "the longest wait between two rounds fits within the budget",
);
assert(
  RETRY_AFTER_S * 1000 <= WRITE_RETRY_AFTER_MS_MAX,
  "the server's own Retry-After is honoured",
);
