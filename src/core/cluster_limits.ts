/**
 * The bounds of a ferry cluster (SPEC 13.4), unit last. Kept beside `limits.ts` so that file stays
 * readable; the same rules hold: hard limits, defaults marked, relations asserted at load.
 *
 * @module
 */

import assert from "./assert.ts";

/** Shortest leader lease a cluster may ask for (SPEC 13.4: `--lease-ttl-s` at least 2). */
export const LEASE_TTL_S_MIN = 2;
/** Default leader lease. */
export const LEASE_TTL_S_DEFAULT = 5;
/** Longest leader lease: past it a dead leader blocks writes for too long to call it HA. */
export const LEASE_TTL_S_MAX = 60;
/** Keepalives go every this fraction of the granted TTL (SPEC 13.4: a quarter). */
export const KEEPALIVE_FRACTION_OF_TTL = 0.25;
/** The fencing deadline is the last answered keepalive's send time plus this fraction of the TTL. */
export const FENCE_FRACTION_OF_TTL = 0.5;
/** One etcd request may take this long before the endpoint counts as unreachable. */
export const ETCD_REQUEST_TIMEOUT_MS = 750;
/**
 * After a keepalive that failed (refused, or unanswered within the timeout) the next one goes this
 * soon, to the next endpoint, rather than a whole interval later: the last answered keepalive's
 * deadline lies only a quarter TTL past the next regular send, so waiting for it would fence the
 * leader after one lost keepalive, however soon etcd (or another endpoint) answers again.
 */
export const KEEPALIVE_RETRY_MS = 100;
/** Largest etcd answer ferry reads (a range over the timeline history or the votes). */
export const ETCD_RESPONSE_BYTES_MAX = 4 * 1024 * 1024;
/** Endpoints a cluster may list. */
export const ETCD_ENDPOINTS_MAX = 16;
/** Members a cluster may list (a majority must answer every election). */
export const CLUSTER_MEMBERS_MAX = 9;
/** How often a standby looks for the leader key and for open elections. */
export const LEADER_POLL_MS = 200;
/** Failover slot positions are written to etcd at most this often (SPEC 13.4). */
export const SLOTS_MIRROR_INTERVAL_MS = 10_000;
/** The leader looks whether the failover slots document is due this often (the throttle decides). */
export const SLOTS_MIRROR_CHECK_MS = 1_000;
/** A state rebuild from the leader's snapshot that failed is tried again after this long. */
export const STATE_REBUILD_RETRY_MS = 5_000;
/** Timeline history entries read from etcd at most. */
export const TIMELINE_HISTORY_ENTRIES_MAX = 10_000;
/** Bytes of one JSON value ferry keeps in etcd at most (a leader key, a vote, the slots document). */
export const ETCD_VALUE_BYTES_MAX = 1024 * 1024;
/** A node id, cluster name or member id: this many characters at most. */
export const CLUSTER_NAME_CHARS_MAX = 64;

assert(LEASE_TTL_S_MIN <= LEASE_TTL_S_DEFAULT && LEASE_TTL_S_DEFAULT <= LEASE_TTL_S_MAX);
assert(KEEPALIVE_FRACTION_OF_TTL < FENCE_FRACTION_OF_TTL, "a keepalive goes before the fence");
assert(
  ETCD_REQUEST_TIMEOUT_MS < LEASE_TTL_S_MIN * 1_000 * FENCE_FRACTION_OF_TTL,
  "a hung request cannot outlive the shortest fence",
);
assert(LEADER_POLL_MS < LEASE_TTL_S_MIN * 1_000 * KEEPALIVE_FRACTION_OF_TTL);
assert(KEEPALIVE_RETRY_MS < LEASE_TTL_S_MIN * 1_000 * KEEPALIVE_FRACTION_OF_TTL);
assert(ETCD_VALUE_BYTES_MAX <= ETCD_RESPONSE_BYTES_MAX);
assert(SLOTS_MIRROR_CHECK_MS <= SLOTS_MIRROR_INTERVAL_MS, "a due document is written in time");
