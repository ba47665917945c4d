/**
 * Every bound ferry enforces, in one place, unit last.
 *
 * Values marked "default" are the defaults of a config setting (src/core/config.ts); the rest are hard
 * limits. Relations between bounds are asserted when this module loads, so a bad edit fails at once.
 *
 * @module
 */

import assert from "./assert.ts";
import * as denoKv from "./deno_kv_limits.ts";

export * from "./deno_kv_limits.ts";

export const KIB_BYTES = 1024;
export const MIB_BYTES = 1024 * KIB_BYTES;
export const GIB_BYTES = 1024 * MIB_BYTES;

/** Largest integer ferry accepts for an LSN, term or timestamp (u64 on disk, exact JS numbers here). */
export const U64_SAFE_MAX = Number.MAX_SAFE_INTEGER;

// ---- log frames (SPEC.md section 2) ----

/** A frame claiming a longer payload is corrupt, whatever the version. */
export const FRAME_PAYLOAD_BYTES_MAX = 256 * MIB_BYTES;

// ---- spool (SPEC.md section 3) ----

/** Default size past which a segment is sealed and a new one started. */
export const SEGMENT_BYTES_DEFAULT = 64 * MIB_BYTES;
/** Smallest segment size a config may ask for (tests use small segments). */
export const SEGMENT_BYTES_MIN = 4 * KIB_BYTES;
/** Largest segment size a config may ask for. */
export const SEGMENT_BYTES_MAX = 1 * GIB_BYTES;
/** Default memory budget of the in-memory tail of recent frames. */
export const TAIL_BYTES_DEFAULT = 64 * MIB_BYTES;
/** Largest memory budget a config may give the tail. */
export const TAIL_BYTES_MAX = 4 * GIB_BYTES;
/** Every this many records of a segment, the seek index keeps a checkpoint. */
export const SEEK_INDEX_INTERVAL_RECORDS = 64;
/** Largest seek-index sidecar (`<lsn>.idx`) read: a larger one is damaged and ignored. */
export const SEEK_SIDECAR_BYTES_MAX = 8 * MIB_BYTES;
/** Largest segment manifest; a timeline with more sealed segments than fit keeps none. */
export const SEGMENT_MANIFEST_BYTES_MAX = 16 * MIB_BYTES;
/**
 * Largest clean shutdown record (`clean.shutdown`: the newest segment's seek index and append-time
 * samples); a larger one is not written (the next open scans the newest segment).
 */
export const CLEAN_SHUTDOWN_BYTES_MAX = 10 * MIB_BYTES;
/**
 * How long after the spool opens the newest segment's SHA-256 starts catching up on its bytes (the
 * open hashes none), so start-up and the first requests do not share the CPU with it.
 */
export const DIGEST_CATCH_UP_DELAY_MS = 1_000;
/** Frame bytes one group commit writes at most (one write, one fdatasync). */
export const GROUP_COMMIT_BYTES_MAX = 8 * MIB_BYTES;
/** Records one group commit writes at most. */
export const GROUP_COMMIT_RECORDS_MAX = 16_384;
/** Frame bytes that may wait in the append queue; beyond it appends are refused (back-pressure). */
export const APPEND_QUEUE_BYTES_MAX = 256 * MIB_BYTES;
/** Bytes read from a segment file per read call when serving a range. */
export const READ_CHUNK_BYTES = 1 * MIB_BYTES;
/**
 * Smallest and largest first read of a raw range read (a raw-frame pull served from a segment
 * file): it reads what the budget is expected to need, at least this little and at most this
 * much; a frame larger than what was read is read whole by a second read.
 */
export const RANGE_READ_BYTES_MIN = 64 * KIB_BYTES;
export const RANGE_READ_BYTES_MAX = 72 * MIB_BYTES;
/**
 * Read-ahead of a catching-up reader's next range (wal/read_ahead.ts): bytes and entries held at
 * most (the oldest go first), and how long an entry waits for its reader.
 */
export const READ_AHEAD_BYTES_MAX = 32 * MIB_BYTES;
export const READ_AHEAD_ENTRIES_MAX = 16;
export const READ_AHEAD_TTL_MS = 5_000;
/** Append-time samples kept in memory for lag estimates (two numbers each). */
export const COMMIT_TIME_SAMPLES_MAX = 65_536;
/** Long-poll waiters the spool keeps at once; more are refused. */
export const APPEND_WAITERS_MAX = 10_000;

// ---- change records and writes (SPEC.md sections 1 and 9.2) ----

/** Default largest payload of one change record. */
export const RECORD_BYTES_DEFAULT = 1 * MIB_BYTES;
/** Longest collection name, in UTF-8 bytes. */
export const COLLECTION_BYTES_MAX = 128;
/** Longest key, in UTF-8 bytes. */
export const KEY_BYTES_MAX = 1024;
/** Deepest nesting of arrays and objects in a record value (deeper JSON is a 400). */
export const JSON_DEPTH_MAX = 64;
/** Default largest number of records in one write request. */
export const REQUEST_RECORDS_DEFAULT = 1000;
/** Default largest body of one write request. */
export const REQUEST_BYTES_DEFAULT = 4 * MIB_BYTES;
/** Slabs small write requests encode into (above a quarter of one: a buffer of its own). */
export const WRITE_ENCODE_SLAB_BYTES = 64 * KIB_BYTES;
/** Members an object in a value may have for the write's fast path (`write_scan.ts`) to copy it. */
export const WRITE_SCAN_MEMBERS_MAX = 32;

// ---- replication (SPEC.md sections 4 to 7) ----

/** Longest replica id, in bytes; ids are `[A-Za-z0-9_.-]`. */
export const REPLICA_ID_BYTES_MAX = 128;
/**
 * Most replicas registered at once, and most replication slots kept: one bound, since every
 * registered replica has a slot and a slot without a registered replica is one that came and went.
 * All slots are persisted in one Deno KV commit, which is what keeps the number small.
 */
export const REPLICAS_MAX = 256;
/** Longest region name, in bytes (names are ASCII `[A-Za-z0-9_.-]`). */
export const REGION_BYTES_MAX = 64;
/** Longest replica id the slot catalog decodes (looser than registration, for reddb's files). */
export const CATALOG_REPLICA_ID_BYTES_MAX = 1024;

// ---- commit policies (SPEC.md section 6) ----

/** Largest N of `ack_n=N`. */
export const ACK_N_MAX = 1000;
/** Most region names one `regions=` policy may list (counted before duplicates are removed). */
export const COMMIT_POLICY_REGIONS_MAX = 32;
/** Longest policy text that can be valid; longer text is refused before it is looked at. */
export const COMMIT_POLICY_CHARS_MAX = "regions=".length +
  COMMIT_POLICY_REGIONS_MAX * (REGION_BYTES_MAX + 1) - 1;
/** Commit waits held at once; beyond it a write is refused (overloaded). */
export const COMMIT_WAITS_MAX = 100_000;
/** Longest commit wait one request may ask for. */
export const COMMIT_TIMEOUT_MS_MAX = 600_000;
/** How far back a slot's growth rate looks (a bursty writer is judged by its average). */
export const SLOT_GROWTH_WINDOW_MS = 300_000;
/** Samples kept per slot for its growth rate (one per health sweep, about a second apart). */
export const SLOT_GROWTH_SAMPLES_MAX = 600;
/** A growth rate needs samples at least this far apart. */
export const SLOT_GROWTH_SPAN_MS_MIN = 2000;
/** Default: warn when a slot's predicted invalidation is closer than this. */
export const SLOT_ETA_WARN_S_DEFAULT = 600;
/** How often the health sweep runs at least (a tiny health window must not spin it). */
export const HEALTH_SWEEP_MS_MIN = 10;
/** How often the health sweep runs at most. */
export const HEALTH_SWEEP_MS_MAX = 1000;

// ---- materialised state and snapshots (SPEC.md section 8) ----

/**
 * Records and bytes the state applier reads from the spool per batch (KvState cuts a batch into
 * commits of Deno KV's size and advances the applied LSN after each).
 */
export const STATE_APPLY_BATCH_RECORDS = 16_384;
export const STATE_APPLY_BATCH_BYTES = 8 * MIB_BYTES;
/** A backlog smaller than this lingers (`STATE_APPLY_LINGER_MS`) to gather more per commit. */
export const STATE_APPLY_LINGER_BELOW_RECORDS = 1000;
/**
 * Entries one range listing reads at most while finding a commit's current entries (state/
 * current_mains.ts); a listing that answers no more keys than a point read would is its last.
 */
export const STATE_RANGE_READ_ENTRIES = 128;
/**
 * How long the state applier lets a small backlog gather (a `min_lsn` read ends the wait). Each
 * apply costs the worker and SQLite about 0.5 ms besides its records: at 1 000 writes/s, 100 ms
 * instead of 20 took the primary's CPU from 36 % to 30 % of a core.
 */
export const STATE_APPLY_LINGER_MS = 100;
/** Nice steps below the process that the apply worker's threads take: writes win a busy CPU. */
export const STATE_APPLY_NICE_STEPS = 10;
/** Past this lag (age of the oldest record not applied) the apply stops yielding until the head. */
export const STATE_APPLY_YIELD_LAG_MS = 30_000;
/**
 * When the writes outran a batch (the backlog grew) and the apply yields, it rests this many times
 * as long as the batch took: on 2 cores its CPU (the worker's and SQLite's threads) cost batched
 * writes a quarter of their rate (an A/B measured batches 1.32x with the rests) while the state fell
 * behind all the same.
 */
export const STATE_APPLY_REST_RATIO = 3;
/** Longest rest between two batches. */
export const STATE_APPLY_REST_MS_MAX = 1000;
/**
 * Default bound on the WAL the primary's state has not applied (`--state-backlog-bytes-max`): past
 * it writes wait for the apply. Above a slot's (1 GiB) because holding writes costs more than
 * invalidating a replica; a burst of 1000-record batches reaches it after some 20 s here.
 */
export const STATE_BACKLOG_BYTES_MAX_DEFAULT = 4 * GIB_BYTES;
/** How long a write waits for the state's apply before it is refused (503 `overloaded`). */
export const STATE_BACKLOG_HOLD_MS = 10_000;
/** How long a stop waits for the apply worker (its priority may get it no CPU) before ending it. */
export const STATE_STOP_WAIT_MS = 500;
/** Pause after a failed apply before trying again. */
export const STATE_RETRY_MS = 200;
/** Entries read from KV per page while streaming a snapshot. */
export const SNAPSHOT_PAGE_ENTRIES = 500;
/**
 * How long a new snapshot waits for the state to apply what it may before it starts there: a start
 * far behind the head gave the replica a slot already past the lag cap, invalidated at once.
 */
export const SNAPSHOT_FRESH_WAIT_MS = 5000;
/** Default time a snapshot stream waits for its reader to take a chunk before it ends. */
export const SNAPSHOT_STALL_TIMEOUT_MS_DEFAULT = 60_000;
/** Bytes of entry lines gathered into one chunk of a snapshot stream. */
export const SNAPSHOT_CHUNK_BYTES = 64 * KIB_BYTES;

// ---- the replica role ----

/**
 * Records a replica asks for per pull (the most a pull serves: catching up costs one round trip
 * per 10 000 records, not per 1000), and how long it lets the primary hold a pull.
 */
export const REPLICA_PULL_RECORDS = 10_000;
export const REPLICA_PULL_WAIT_MS = 25_000;
/** How long past its hold a pull may take before the replica gives up on it. */
export const REPLICA_PULL_GRACE_MS = 10_000;
/** Backoff after errors: doubles from the minimum to the maximum, with jitter. */
export const REPLICA_BACKOFF_MS_MIN = 100;
export const REPLICA_BACKOFF_MS_MAX = 5000;
/** How often a re-bootstrap logs its progress. */
export const REPLICA_PROGRESS_LOG_MS = 5000;
/** Attempts to finish one snapshot (resuming after cuts) before starting over. */
export const REPLICA_SNAPSHOT_ATTEMPTS_MAX = 20;
/**
 * Bytes of snapshot entry lines a replica gathers before storing them (flushed at this or at
 * `SNAPSHOT_PAGE_ENTRIES` entries, whichever comes first), so a batch of large values stays small.
 */
export const REPLICA_SNAPSHOT_BATCH_BYTES_MAX = 8 * MIB_BYTES;

// ---- streaming pulls (SPEC.md 13.1) ----

/** Default, smallest and largest life of one stream (then it ends and the client resumes). */
export const STREAM_MAX_MS_DEFAULT = 300_000;
export const STREAM_MAX_MS_MIN = 100;
export const STREAM_MAX_MS_MAX = 3_600_000;
/**
 * Default, smallest and largest number of bytes a stream may hold queued and not yet sent: past it
 * the reader is not keeping up, the stream ends and the reader resumes from its last LSN.
 */
export const STREAM_UNSENT_BYTES_DEFAULT = 8 * MIB_BYTES;
export const STREAM_UNSENT_BYTES_MIN = 4 * KIB_BYTES;
export const STREAM_UNSENT_BYTES_MAX = 1 * GIB_BYTES;
/** A stream carries a control record at least this often while nothing else flows. */
export const STREAM_CONTROL_INTERVAL_MS = 5000;
/** How often the stream hub looks over its streams (control records, life, slots). */
export const STREAM_TICK_MS = 1000;
/** Streams open at once; more are refused (overloaded). */
export const STREAMS_MAX = 1024;
/**
 * Most bytes a stream hands the server as one chunk when several are queued (a reader that fell
 * behind, a catch-up read of many group commits); one larger chunk still goes alone, uncopied.
 * Deno's response body takes no more chunks past 64 KiB held, so larger buys nothing.
 */
export const STREAM_COALESCE_BYTES_MAX = 64 * KIB_BYTES;
/**
 * `--stream-batch-ms`: streams get group commits at most once per this interval (0: each as soon
 * as it is durable, SPEC.md 13.1); see replication/commit_batcher.ts.
 */
export const STREAM_BATCH_MS_DEFAULT = 0;
export const STREAM_BATCH_MS_MAX = 1000;
/** Largest JSON payload of a control record; a longer one is corrupt. */
export const CONTROL_PAYLOAD_BYTES_MAX = 1 * MIB_BYTES;
/** A streaming replica acks at least this often, even with nothing new: acks are how it is seen. */
export const REPLICA_STREAM_ACK_MS = 2000;
/** A stream that brings nothing (no frame, no control record) for this long is given up. */
export const REPLICA_STREAM_IDLE_MS = 3 * STREAM_CONTROL_INTERVAL_MS;
/**
 * A stream cut sooner than this after it opened, before it brought any frame, counts as broken (as
 * one that brought nothing does).
 */
export const REPLICA_STREAM_SHORT_MS = 10_000;
/**
 * How long shutdown waits for the server to finish its responses once every stream has ended and
 * every held wait was answered: a client that stopped reading (a stopped process) would otherwise
 * hold the exit for ever.
 */
export const SHUTDOWN_GRACE_MS = 1000;
/** Broken streams in a row before the replica falls back to long-polls. */
export const REPLICA_STREAM_BREAKS_MAX = 3;
/** How long a replica that fell back to long-polls keeps to them before trying a stream again. */
export const REPLICA_STREAM_RETRY_MS = 300_000;
/** Failed steps in a row on one node before a replica with several `--primary-url`s moves. */
export const UPSTREAM_SWITCH_FAILURES = 3;
/** Longest backoff of a replica looking for the next leader among its `--primary-url`s. */
export const UPSTREAM_LOOK_MS = 500;
/** How long a replica about to move waits for the listed nodes' topologies. */
export const UPSTREAM_TOPOLOGY_TIMEOUT_MS = 2000;
/** The most nodes one `--primary-url` may list. */
export const UPSTREAM_URLS_MAX = 16;

// ---- HTTP (SPEC.md section 9) ----

/** Default and largest `max_count` of a pull (larger is clamped). */
export const PULL_RECORDS_DEFAULT = 1000;
export const PULL_RECORDS_MAX = 10_000;
/** Default and largest `max_bytes` of a pull (larger is clamped). */
export const PULL_BYTES_DEFAULT = 4 * MIB_BYTES;
export const PULL_BYTES_MAX = 64 * MIB_BYTES;
/** Longest long-poll hold of a pull, a topology wait or a read's `min_lsn` wait (larger is clamped). */
export const PULL_WAIT_MS_MAX = 30_000;
/** Largest body of any JSON request other than a write (register, ack, flags). */
export const SMALL_BODY_BYTES_MAX = 64 * KIB_BYTES;
/** Longest bearer token accepted in an `Authorization` header. */
export const BEARER_TOKEN_CHARS_MAX = 4096;
/** Event-stream subscribers at once (`GET /v1/events`); more are refused. */
export const EVENTS_SUBSCRIBERS_MAX = 64;
/** Events and bytes a subscriber may fall behind before it is dropped (it never slows writes). */
export const EVENTS_SUBSCRIBER_BUFFER_EVENTS_MAX = 1024;
export const EVENTS_SUBSCRIBER_BUFFER_BYTES_MAX = 4 * MIB_BYTES;
/** How often the event stream carries a status tick (writes/s, lag, slots). */
export const EVENTS_TICK_MS = 1000;
/** Random bytes of a token `main.ts token` makes (printed as hex). */
export const CLI_TOKEN_BYTES = 32;
/** Most tokens a tokens file may hold. */
export const TOKENS_MAX = 10_000;
/** How long a TLS reload waits for the replaced listener to close before it reports the reload. */
export const TLS_SWAP_SETTLE_MS = 100;
/** Largest tokens file. */
export const TOKENS_FILE_BYTES_MAX = 4 * MIB_BYTES;
/** Largest PEM file (`--tls-cert`, `--tls-key`, `--primary-ca`): a long chain or CA bundle fits. */
export const PEM_FILE_BYTES_MAX = 1 * MIB_BYTES;

// ---- sealed segments as immutable, cacheable objects (SPEC.md 13.2) ----

/** Bytes read from a sealed segment per read while serving it (one buffer in flight per request). */
export const SEGMENT_SERVE_CHUNK_BYTES = 256 * KIB_BYTES;
/** `max-age` of a sealed segment's answer: a content-addressed URL never changes its bytes. */
export const SEGMENT_CACHE_MAX_AGE_S = 31_536_000;
/** Hex digits of a segment's SHA-256 in its URL (the name is content-addressed). */
export const SEGMENT_URL_HASH_CHARS = 16;
/** Most URL signing keys a tokens file may list (every one verifies, the first signs). */
export const URL_SIGNING_KEYS_MAX = 16;
/** Shortest and longest URL signing key, in characters (its UTF-8 bytes are the HMAC key). */
export const URL_SIGNING_KEY_CHARS_MIN = 32;
export const URL_SIGNING_KEY_CHARS_MAX = 512;
/** A signed URL's `exp` is the start of the next period plus one period, so it lives ≥ 1 h. */
export const URL_SIGNATURE_PERIOD_S = 3600;
/** Largest segment listing (`GET /v1/segments`) a replica reads. */
export const SEGMENT_LIST_BYTES_MAX = 16 * MIB_BYTES;

// ---- spool and segment files (SPEC.md section 3) ----

/**
 * Writes up to this size use Deno's blocking call: it only copies into the page cache, and each
 * async file op costs a hop to a thread pool and back. The fdatasync stays async while writers are
 * concurrent: while it runs, other requests reach the append queue and join the next group commit
 * (a blocking fsync would leave every group commit with one record). See `wal/inline_sync.ts`.
 */
export const BLOCKING_IO_BYTES_MAX = 256 * 1024;
/**
 * Group commits showing few writers in a row (`WAL_INLINE_SYNC_WRITERS_MAX`) before the commits'
 * fdatasync runs on the event loop's thread.
 */
export const WAL_INLINE_SYNC_AFTER_COMMITS = 8;
/**
 * Writers few enough for an inline fdatasync: a group commit of at most this many appends, during
 * whose async fdatasync fewer than this many arrived. Measured (wrk, closed loop): two writers
 * ran as fast inline as async (0.97-1.02 of the floor vs 0.81-0.91), four ran at half the rate.
 */
export const WAL_INLINE_SYNC_WRITERS_MAX = 2;
/** While inline, one group commit in this many syncs async again to find concurrent writers. */
export const WAL_INLINE_SYNC_PROBE_EVERY = 16;
/**
 * An fdatasync slower than this ends inline syncing: the event loop must not wait on a slow disk
 * (this one flushes in 0.1-0.3 ms).
 */
export const WAL_INLINE_SYNC_SLOW_MS = 1;
/** Compact the backing array once this many evicted slots accumulate at its front. */
export const TAIL_COMPACT_AFTER_SLOTS = 4096;

// ---- slots (SPEC.md section 4) ----

/** Longest a touch-only change (last-seen time) waits to be persisted. */
export const SLOT_TOUCH_PERSIST_MS = 10_000;

// ---- topology and commit policies ----

/** Most topology long-polls held at once. */
export const TOPOLOGY_WAITERS_MAX = 10_000;
/** Longest rendering of a bad policy value echoed back in an error. */
export const COMMIT_POLICY_ECHO_CHARS_MAX = 100;

// ---- the materialised state in Deno KV (SPEC.md section 8) ----

/** How long the applier waits for new records before looking again (it is also woken). */
export const STATE_IDLE_WAIT_MS = 1000;
/**
 * A value whose JSON text is at most this many bytes of UTF-8 is stored inline, provided V8's
 * serialization of the text also fits a KV value (it takes two bytes per UTF-16 unit when the text
 * has a character past U+00FF); otherwise it is chunked.
 */
export const KV_INLINE_VALUE_BYTES = 60_000;
/** Bytes of UTF-8 JSON text per chunk of a larger value. */
export const KV_CHUNK_BYTES = 60_000;
/** Mutations one commit holds at most (headroom below Deno KV's 1000). */
export const KV_COMMIT_MUTATIONS_MAX = 900;
/** Estimated bytes one commit holds at most (headroom below Deno KV's 800 KiB). */
export const KV_COMMIT_BYTES_MAX = 700 * KIB_BYTES;
/** Key bytes one commit holds at most (headroom below Deno KV's 80 KiB of set keys). */
export const KV_COMMIT_KEY_BYTES_MAX = 64 * KIB_BYTES;
/** Chunk bytes one sub-batch prepares at most (bounds memory; a single larger value still goes). */
export const KV_SUB_BATCH_CHUNK_BYTES_MAX = 16 * MIB_BYTES;
/** Added to a serialized object's estimated size for V8's tags and property names. */
export const KV_OBJECT_OVERHEAD_BYTES = 64;
/** Largest estimated size of the meta object. */
export const KV_META_BYTES_MAX = 4 * KIB_BYTES;
/** How many times a read of a chunked value starts over after finding it replaced. */
export const KV_READ_RETRIES_MAX = 5;
/** Memory a state store spends remembering what it wrote (state/known_mains.ts): ~500k keys. */
export const KNOWN_MAINS_BYTES_MAX = 64 * MIB_BYTES;
/** A remembered key's cost besides 2 bytes per unit of its id: a Map slot and a small object. */
export const KNOWN_MAIN_OVERHEAD_BYTES = 80;
/** Entries a scan reads per `kv.list` batch unless told otherwise. */
export const KV_SCAN_BATCH_ENTRIES_DEFAULT = 100;
/** How far a listing may run past the counted entries before it is checked against the meta. */
export const KV_SCAN_SLACK_ENTRIES = 1000;
/** Largest JSON text a stored entry may claim (anything larger is corruption). */
export const KV_VALUE_TEXT_BYTES_MAX = FRAME_PAYLOAD_BYTES_MAX;

// ---- HTTP server and client (SPEC.md section 9) ----

/** Responses up to this size are sent as one buffer (copied); larger ones stream their views. */
export const FRAMES_SINGLE_WRITE_BYTES_MAX = 256 * 1024;
/** Digits of the longest number a query accepts (2^53 - 1 has 16). */
export const QUERY_NUMBER_DIGITS_MAX = 16;
/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_S = 1;
/** Longest snapshot NDJSON line accepted, in bytes, without its "\n" (longer is a format error). */
export const SNAPSHOT_LINE_BYTES_MAX = 4 * MIB_BYTES;
/** Largest error body read; the rest is discarded (the JSON error shape is small). */
export const ERROR_BODY_BYTES_MAX = 64 * KIB_BYTES;
/**
 * Largest successful body read (a pull of `PULL_BYTES_MAX` may end with one frame of up to
 * `FRAME_PAYLOAD_BYTES_MAX`); a larger answer is a `FerryResponseError`, read no further.
 */
export const RESPONSE_BODY_BYTES_MAX = PULL_BYTES_MAX + FRAME_PAYLOAD_BYTES_MAX;
/** Characters of a bad value quoted in an error message. */
export const QUOTED_VALUE_CHARS_MAX = 80;

assert(PULL_RECORDS_DEFAULT <= PULL_RECORDS_MAX && PULL_BYTES_DEFAULT <= PULL_BYTES_MAX);
assert(
  STREAM_MAX_MS_MIN <= STREAM_MAX_MS_DEFAULT && STREAM_MAX_MS_DEFAULT <= STREAM_MAX_MS_MAX &&
    STREAM_UNSENT_BYTES_MIN <= STREAM_UNSENT_BYTES_DEFAULT &&
    STREAM_UNSENT_BYTES_DEFAULT <= STREAM_UNSENT_BYTES_MAX,
);
assert(STREAM_TICK_MS < STREAM_CONTROL_INTERVAL_MS, "a tick can send a control record in time");
assert(
  REPLICA_STREAM_IDLE_MS > STREAM_CONTROL_INTERVAL_MS + STREAM_TICK_MS,
  "a live stream always brings something within the replica's idle limit",
);
assert(REPLICA_PULL_RECORDS <= PULL_RECORDS_MAX, "a replica's pull is not clamped");
assert(RANGE_READ_BYTES_MIN <= READ_CHUNK_BYTES && PULL_BYTES_MAX < RANGE_READ_BYTES_MAX);
assert(
  REPLICA_ID_BYTES_MAX <= CATALOG_REPLICA_ID_BYTES_MAX,
  "every registered id fits the catalog",
);

assert(
  SNAPSHOT_LINE_BYTES_MAX <= REPLICA_SNAPSHOT_BATCH_BYTES_MAX,
  "any one snapshot line fits a replica's batch",
);
assert(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT && SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
assert(RECORD_BYTES_DEFAULT <= FRAME_PAYLOAD_BYTES_MAX);
assert(REQUEST_BYTES_DEFAULT <= GROUP_COMMIT_BYTES_MAX, "one request must fit one group commit");
assert(GROUP_COMMIT_BYTES_MAX <= APPEND_QUEUE_BYTES_MAX);
assert(READ_CHUNK_BYTES <= GROUP_COMMIT_BYTES_MAX);
/** The smallest frame of any version (v1: magic, version, LSN, length; no payload, no CRC). */
const _FRAME_BYTES_MIN = 21;
assert(
  Math.ceil(
            (SEGMENT_BYTES_MAX + GROUP_COMMIT_BYTES_MAX) / _FRAME_BYTES_MIN /
              SEEK_INDEX_INTERVAL_RECORDS,
          ) * 8 + 72 <= SEEK_SIDECAR_BYTES_MAX,
  "the sidecar of the largest segment fits",
);
assert(
  SEEK_SIDECAR_BYTES_MAX + COMMIT_TIME_SAMPLES_MAX * 16 <= CLEAN_SHUTDOWN_BYTES_MAX,
  "the clean shutdown record of the largest segment fits, with every append-time sample",
);

assert(KV_INLINE_VALUE_BYTES + KV_OBJECT_OVERHEAD_BYTES <= denoKv.DENO_KV_VALUE_BYTES_MAX);
assert(KV_CHUNK_BYTES <= denoKv.DENO_KV_VALUE_BYTES_MAX);
assert(KV_COMMIT_MUTATIONS_MAX < denoKv.DENO_KV_COMMIT_MUTATIONS_MAX);
assert(KV_COMMIT_BYTES_MAX < denoKv.DENO_KV_COMMIT_BYTES_MAX);
assert(KV_COMMIT_KEY_BYTES_MAX < denoKv.DENO_KV_COMMIT_KEY_BYTES_MAX);
assert(KV_META_BYTES_MAX + 2 * KV_CHUNK_BYTES <= KV_COMMIT_BYTES_MAX, "a commit fits chunks");
assert(KV_CHUNK_BYTES <= KV_SUB_BATCH_CHUNK_BYTES_MAX);
assert(KV_SCAN_BATCH_ENTRIES_DEFAULT <= denoKv.DENO_KV_LIST_BATCH_ENTRIES_MAX);
assert(
  denoKv.DENO_KV_GET_MANY_KEYS_MAX < STATE_RANGE_READ_ENTRIES &&
    STATE_RANGE_READ_ENTRIES <= denoKv.DENO_KV_LIST_BATCH_ENTRIES_MAX,
  "a range listing can answer more keys than a point read, in one list batch",
);
/** Bytes of one slot entry in Deno KV at most (its key, its fields and the id twice). */
const _SLOT_KV_ENTRY_BYTES_MAX = 2 * REPLICA_ID_BYTES_MAX + 512;
assert(
  REPLICAS_MAX + 1 <= KV_COMMIT_MUTATIONS_MAX &&
    (REPLICAS_MAX + 1) * _SLOT_KV_ENTRY_BYTES_MAX <= KV_COMMIT_BYTES_MAX,
  "every slot fits one Deno KV commit",
);
assert(SEGMENT_SERVE_CHUNK_BYTES <= READ_CHUNK_BYTES);
assert(URL_SIGNING_KEY_CHARS_MIN <= URL_SIGNING_KEY_CHARS_MAX);
