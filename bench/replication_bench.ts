/**
 * Replication benchmarks against real primary processes (started like `deno task start`, with its
 * scoped permissions):
 *
 * - "catchup": one puller drains a backlog of 128-byte records as raw frames (every CRC checked),
 *   against a NATS JetStream pull consumer (nats-server from Debian, file storage) draining the
 *   same count, measured in the same run.
 * - "fanout" (streams vs long-polls vs NATS) lives in bench/fanout_bench.ts.
 * - "resume": a ~1 GiB spool of ~1 KiB records: primary start-up time with it vs with an empty
 *   spool, and the time of a pull from the middle (cold, then warm seek index) vs from the tail.
 *
 * Run: `deno task bench catchup` (or resume); `--quick` or FERRY_BENCH_QUICK=1 for small
 * sizes that only validate the script.
 */

import { quickMode } from "./args.ts";
import { FerryClient } from "../src/client/client.ts";
import { KvState } from "../src/state/kv_state.ts";
import {
  GIB_BYTES,
  GROUP_COMMIT_RECORDS_MAX,
  MIB_BYTES,
  REPLICA_PULL_RECORDS,
} from "../src/core/limits.ts";
import { encodeChangeRecord } from "../src/model/records.ts";
import { decodeFrameRun, frameHeaderAt, frameV3ByteLength } from "../src/wal/frame.ts";
import { timelineDirName } from "../src/wal/timelines.ts";
import { Spool } from "../src/wal/spool.ts";
import { joinPath } from "../src/core/files.ts";
import { getJson, type Node, startPrimary, stop } from "../tests/helpers/cluster.ts";
import { freePort, ROOT } from "../tests/helpers/process.ts";
import { appendResults, formatNumber, percentile } from "./results.ts";
import {
  drainNats,
  type NatsDrain,
  type NatsDrainConfig,
  type NatsServer,
  publishBacklog,
  startNatsServer,
  stopNatsServer,
} from "./catchup_nats.ts";

// ---- sizes (full / quick) ----

const CATCHUP_RECORDS_FULL = 1_000_000;
const CATCHUP_RECORDS_QUICK = 50_000;
/** Payload bytes of one catch-up record (a valid change record, padded to exactly this size). */
const CATCHUP_RECORD_BYTES = 128;
/**
 * Segment size of the quick catch-up backlog, so that the quick drain too crosses sealed segments
 * before it reaches the in-memory tail (the full run uses the default 64 MiB).
 */
const CATCHUP_SEGMENT_BYTES_QUICK = 2 * MIB_BYTES;
/**
 * Records per pull (ferry `max_count`, what a replica asks for) and per fetch (JetStream
 * `max_messages`); the earlier, smaller pull size is measured too.
 */
const CATCHUP_PULL_RECORDS = REPLICA_PULL_RECORDS;
const CATCHUP_SMALL_PULL_RECORDS = 1000;
/**
 * Drains of ferry and of the floor at the large pull size, alternated (which goes first alternates
 * too, so neither always follows the other's garbage); the median of each is reported.
 */
const CATCHUP_ROUNDS = 5;
/** NATS drains: both clients at the small and the large fetch size; the best one is "NATS". */
const NATS_DRAINS: NatsDrainConfig[] = [
  { client: "nats@2", fetchMessages: CATCHUP_SMALL_PULL_RECORDS },
  { client: "nats@2", fetchMessages: CATCHUP_PULL_RECORDS },
  { client: "@nats-io/jetstream@3", fetchMessages: CATCHUP_SMALL_PULL_RECORDS },
  { client: "@nats-io/jetstream@3", fetchMessages: CATCHUP_PULL_RECORDS },
];
/** How long the floor server may take to load the segment files and listen. */
const FLOOR_START_TIMEOUT_MS = 60_000;
/** Acceptance targets: ferry vs NATS at its best, and vs the floor. */
const TARGET_VS_NATS = 3.0;
const TARGET_VS_FLOOR = 0.8;

const RESUME_SPOOL_BYTES_FULL = GIB_BYTES;
const RESUME_SPOOL_BYTES_QUICK = 100 * 1000 * 1000;
/** Payload bytes of one resume record. */
const RESUME_RECORD_BYTES = 1024;
/** `max_count` of the resume pulls. */
const RESUME_PULL_RECORDS = 1000;
/** Measured start-ups of each kind (after one unmeasured warm-up start); the median is reported. */
const RESUME_STARTS = 3;
/** Warm pulls (middle and tail); the median is reported. */
const RESUME_WARM_PULLS = 5;

/**
 * Settings of the benchmark primaries beyond the start task's: nothing is pruned during a run
 * (retention would otherwise prune the applied backlog past 256 MiB), and a slot 1M records behind
 * is not invalidated (the default cap is 100 000 records).
 */
const PRIMARY_RETAIN_FLAGS = ["--wal-retain-bytes-min", String(64 * GIB_BYTES)];
const PRIMARY_NO_LAG_CAP_FLAGS = ["--slot-lag-max-records", "0"];

const MB = 1_000_000;
/** Bytes of frames per append while a backlog is built (small enough that segments end near 64 MiB). */
const BUILD_APPEND_BYTES = MIB_BYTES;
/** Fixed writer timestamp of generated records (keeps their size fixed). */
const RECORD_TS = 1_700_000_000_000;
const KEY_DIGITS = 10;

// ---- helpers ----

/** A valid change record of exactly `bytes` bytes of UTF-8 JSON (a put with a padded value). */
function recordPayload(index: number, bytes: number): Uint8Array {
  const key = `k${String(index).padStart(KEY_DIGITS, "0")}`;
  const record = { op: "put" as const, collection: "bench", key, value: "", ts: RECORD_TS };
  const emptyBytes = encodeChangeRecord(record).byteLength;
  if (emptyBytes > bytes) throw new Error(`a record cannot be as small as ${bytes} bytes`);
  const payload = encodeChangeRecord({ ...record, value: "x".repeat(bytes - emptyBytes) });
  if (payload.byteLength !== bytes) throw new Error("record padding is off");
  return payload;
}

/**
 * Writes `count` records straight into the spool of `dataDir` (big group commits, no server), then
 * marks them applied in the primary's materialised state, as on a primary that took these writes
 * over HTTP and applied them: so the state applier neither competes for CPU nor warms the seek
 * indexes during the measurements. The newest segment's records are the ones a starting primary
 * loads into its in-memory tail.
 */
async function buildBacklog(
  dataDir: string,
  count: number,
  recordBytes: number,
  segmentBytesMax?: number,
): Promise<{ segments: number; bytes: number; newestSegmentRecords: number }> {
  const walDir = joinPath(dataDir, "wal");
  const spool = await Spool.open({ walDir, timeline: 1, term: 1, segmentBytesMax });
  const perAppend = Math.min(
    GROUP_COMMIT_RECORDS_MAX,
    Math.floor(BUILD_APPEND_BYTES / frameV3ByteLength(recordBytes)),
  );
  try {
    for (let first = 0; first < count; first += perAppend) {
      const payloads: Uint8Array[] = [];
      for (let i = first; i < Math.min(count, first + perAppend); i++) {
        payloads.push(recordPayload(i, recordBytes));
      }
      await spool.append(payloads);
    }
    if (spool.currentLsn() !== count) throw new Error(`spool holds ${spool.currentLsn()} records`);
  } finally {
    await spool.close();
  }
  const kv = await Deno.openKv(joinPath(dataDir, "ferry.kv"));
  try {
    await new KvState(kv).setMeta({ applied_lsn: count, last_term: 1, last_hash: null });
  } finally {
    kv.close();
  }
  const segments = spool.segments();
  return {
    segments: segments.length,
    bytes: spool.retainedBytes(),
    newestSegmentRecords: count - segments[segments.length - 1]!.firstLsn + 1,
  };
}

async function stopQuietly(node: Node | undefined): Promise<void> {
  if (node) await stop(node).catch((error) => console.error(`stopping primary: ${error}`));
}

function median(values: readonly number[]): number {
  return percentile(values, 50);
}

function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

function ratio(a: number, b: number): string {
  return b > 0 ? (a / b).toFixed(2) : "n/a";
}

async function commandOk(command: string, args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, {
      args,
      stdout: "null",
      stderr: "inherit",
      env: { DEBIAN_FRONTEND: "noninteractive" },
    }).output();
    return success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Installs Debian's nats-server when it is missing (apt-get update only if the install fails). */
export async function ensureNatsServer(): Promise<void> {
  if (await commandOk("nats-server", ["--version"])) return;
  const root = Deno.uid() === 0;
  const apt = (args: string[]) =>
    root ? commandOk("apt-get", args) : commandOk("sudo", ["apt-get", ...args]);
  const install = ["install", "-y", "--no-install-recommends", "nats-server"];
  console.log("installing nats-server from Debian's packages");
  if (await apt(install)) return;
  if (await apt(["update"]) && await apt(install)) return;
  throw new Error("could not install nats-server (apt-get install -y nats-server)");
}

// ---- catchup ----

interface DrainResult {
  records: number;
  seconds: number;
}

function rateOf(drain: { records: number; seconds: number }): number {
  return drain.records / drain.seconds;
}

/**
 * Drains `count` records as raw frames through `FerryClient.pullFrames` (which checks every CRC in
 * one pass over each body), `maxCount` per pull, checking every LSN and payload size.
 */
async function drainFerry(base: string, count: number, maxCount: number): Promise<DrainResult> {
  const client = new FerryClient(base);
  let since = 0;
  const started = performance.now();
  while (since < count) {
    const pull = await client.pullFrames({ replicaId: "catchup-1", sinceLsn: since, maxCount });
    if (pull.corrupt) throw new Error(`corrupt frame after ${since}: ${pull.corrupt.reason}`);
    if (pull.frames.length === 0) throw new Error(`the pull after ${since} brought nothing`);
    for (const frame of pull.frames) {
      since += 1;
      if (frame.lsn !== since) throw new Error(`expected LSN ${since}, got ${frame.lsn}`);
      if (frame.payload.byteLength !== CATCHUP_RECORD_BYTES) throw new Error("bad payload size");
    }
  }
  return { records: since, seconds: (performance.now() - started) / 1000 };
}

const FLOOR_SCRIPT = "bench/catchup_floor.ts";

interface Floor {
  child: Deno.ChildProcess;
  base: string;
}

/** Starts the floor server (bench/catchup_floor.ts) over the segment files of `walDir`. */
async function startFloor(walDir: string, count: number): Promise<Floor> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      `--allow-read=${walDir}`,
      `--allow-net=127.0.0.1:${port}`,
      FLOOR_SCRIPT,
      String(port),
      walDir,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("the floor did not start")), FLOOR_START_TIMEOUT_MS);
  });
  try {
    let text = "";
    while (!text.includes("\n")) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) throw new Error("the floor exited before it listened");
      text += value;
    }
    const ready = JSON.parse(text.split("\n")[0]!);
    if (ready.records !== count) throw new Error(`the floor holds ${ready.records} records`);
  } catch (error) {
    child.kill("SIGKILL");
    await child.status;
    throw error;
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return { child, base: `http://127.0.0.1:${port}` };
}

async function stopFloor(floor: Floor | undefined): Promise<void> {
  if (!floor) return;
  try {
    floor.child.kill("SIGTERM");
  } catch {
    // already gone
  }
  await floor.child.status;
  await floor.child.stdout.cancel().catch(() => undefined);
}

/**
 * A raw catch-up read of the segment files, no HTTP: each file read whole (`Deno.readFile`, page
 * cache warm), then checked as the client checks pulls of `CATCHUP_PULL_RECORDS` records (cut at
 * frame headers, then `decodeFrameRun` on each: every CRC).
 */
async function rawSegmentRead(
  walDir: string,
  count: number,
): Promise<{ readSeconds: number; checkSeconds: number }> {
  const names = (await Array.fromAsync(Deno.readDir(walDir)))
    .map((entry) => entry.name)
    .filter((name) => name.endsWith(".wal"))
    .sort();
  let readMs = 0;
  let checkMs = 0;
  let records = 0;
  for (const name of names) {
    const started = performance.now();
    const bytes = await Deno.readFile(joinPath(walDir, name));
    const read = performance.now();
    records += _checkInPulls(bytes, name);
    checkMs += performance.now() - read;
    readMs += read - started;
  }
  if (records !== count) throw new Error(`the segment files hold ${records} records`);
  return { readSeconds: readMs / 1000, checkSeconds: checkMs / 1000 };
}

/** Checks `bytes` (whole frames) in runs of `CATCHUP_PULL_RECORDS` frames; returns the count. */
function _checkInPulls(bytes: Uint8Array, name: string): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let records = 0;
  let start = 0;
  while (start < bytes.byteLength) {
    let end = start;
    for (let i = 0; i < CATCHUP_PULL_RECORDS && end < bytes.byteLength; i++) {
      const header = frameHeaderAt(bytes, view, end);
      if (header.status !== "ok") throw new Error(`${name}: frame at ${end} is ${header.status}`);
      end += header.byteLength;
    }
    const run = decodeFrameRun(bytes.subarray(start, end));
    if (run.stop) throw new Error(`${name}: frame at ${start + run.offset} is ${run.stop.status}`);
    records += run.frames.length;
    start = end;
  }
  return records;
}

/** What the catch-up benchmark measured. */
interface CatchupFigures {
  count: number;
  ferryRates: number[];
  floorRates: number[];
  ferrySmall: number;
  floorSmall: number;
  raw: { readSeconds: number; checkSeconds: number };
  nats: NatsDrain[];
  natsVersion: string;
  backlog: { segments: number; newestSegmentRecords: number };
}

/** ferry and the floor, alternated, at the large pull size; then both at the small one. */
async function measureFerryAndFloor(
  dataDir: string,
  count: number,
): Promise<Pick<CatchupFigures, "ferryRates" | "floorRates" | "ferrySmall" | "floorSmall">> {
  const walDir = joinPath(dataDir, "wal", timelineDirName(1));
  let primary: Node | undefined;
  let floor: Floor | undefined;
  try {
    primary = await startPrimary(dataDir, [...PRIMARY_RETAIN_FLAGS, ...PRIMARY_NO_LAG_CAP_FLAGS]);
    floor = await startFloor(walDir, count);
    const ferryRates: number[] = [];
    const floorRates: number[] = [];
    for (let round = 0; round < CATCHUP_ROUNDS; round++) {
      const ferryDrain = () => drainFerry(primary!.base, count, CATCHUP_PULL_RECORDS);
      const floorDrain = () => drainFerry(floor!.base, count, CATCHUP_PULL_RECORDS);
      if (round % 2 === 1) floorRates.push(rateOf(await floorDrain()));
      ferryRates.push(rateOf(await ferryDrain()));
      if (round % 2 === 0) floorRates.push(rateOf(await floorDrain()));
      console.log(
        `round ${round + 1}: ferry ${formatNumber(ferryRates[round]!)}/s, floor ${
          formatNumber(floorRates[round]!)
        }/s (${CATCHUP_PULL_RECORDS} per pull)`,
      );
    }
    const ferrySmall = rateOf(await drainFerry(primary.base, count, CATCHUP_SMALL_PULL_RECORDS));
    const floorSmall = rateOf(await drainFerry(floor.base, count, CATCHUP_SMALL_PULL_RECORDS));
    return { ferryRates, floorRates, ferrySmall, floorSmall };
  } finally {
    await stopFloor(floor);
    await stopQuietly(primary);
  }
}

/** NATS: the same records published to a stream, then drained once per client and fetch size. */
async function measureNats(
  dir: string,
  count: number,
): Promise<{ nats: NatsDrain[]; natsVersion: string }> {
  await ensureNatsServer();
  await Deno.mkdir(joinPath(dir, "nats"));
  let server: NatsServer | undefined;
  try {
    server = await startNatsServer(joinPath(dir, "nats"));
    const { port, version } = server;
    await publishBacklog(port, count, (i) => recordPayload(i, CATCHUP_RECORD_BYTES));
    const nats: NatsDrain[] = [];
    for (const [i, config] of NATS_DRAINS.entries()) {
      const expected = { count, recordBytes: CATCHUP_RECORD_BYTES, name: `drain-${i}` };
      const drain = await drainNats(port, config, expected);
      console.log(
        `NATS ${config.client}, fetch ${config.fetchMessages}: ${formatNumber(rateOf(drain))}/s`,
      );
      nats.push(drain);
    }
    return { nats, natsVersion: version };
  } finally {
    await stopNatsServer(server);
  }
}

/** Catch-up drain: ferry raw frames vs the floor (same frames from memory) vs NATS at its best. */
export async function runCatchupBench(): Promise<void> {
  const quick = quickMode();
  const count = quick ? CATCHUP_RECORDS_QUICK : CATCHUP_RECORDS_FULL;
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-catchup-" });
  try {
    const dataDir = joinPath(dir, "ferry");
    const built = performance.now();
    const backlog = await buildBacklog(
      dataDir,
      count,
      CATCHUP_RECORD_BYTES,
      quick ? CATCHUP_SEGMENT_BYTES_QUICK : undefined,
    );
    console.log(
      `ferry backlog: ${formatNumber(count)} records in ${backlog.segments} segment(s) (the ` +
        `newest, active one holds ${formatNumber(backlog.newestSegmentRecords)}), built in ${
          ms(performance.now() - built)
        }`,
    );
    const served = await measureFerryAndFloor(dataDir, count);
    const raw = await rawSegmentRead(joinPath(dataDir, "wal", timelineDirName(1)), count);
    const nats = await measureNats(dir, count);
    await reportCatchup({ count, ...served, raw, ...nats, backlog }, quick);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Prints the catch-up figures and appends them to bench/RESULTS.md. */
async function reportCatchup(figures: CatchupFigures, quick: boolean): Promise<void> {
  const { count, nats } = figures;
  const ferry = median(figures.ferryRates);
  const floor = median(figures.floorRates);
  const best = nats.reduce((a, b) => (rateOf(b) > rateOf(a) ? b : a));
  const natsBest = rateOf(best);
  const rawRead = count / figures.raw.readSeconds;
  const rawChecked = count / (figures.raw.readSeconds + figures.raw.checkSeconds);
  const payloadMb = (rate: number) => ((rate * CATCHUP_RECORD_BYTES) / MB).toFixed(1);
  const row = (what: string, batch: string, rate: number) =>
    `| ${what} | ${batch} | ${formatNumber(rate)} | ${payloadMb(rate)} | ${ratio(rate, floor)} | ${
      ratio(rate, natsBest)
    } |`;
  const runs = (rates: number[]) => rates.map((r) => formatNumber(r)).join(", ");
  const vsNats = ferry / natsBest;
  const vsFloor = ferry / floor;
  const verdict = (value: number, target: number) =>
    `${value.toFixed(2)} (target ≥ ${target.toFixed(1)}: ${value >= target ? "met" : "NOT met"})`;
  const natsConfig = `${best.client}, fetch ${best.fetchMessages}`;
  const lines = [
    `ferry / NATS at its best (${natsConfig}): ${verdict(vsNats, TARGET_VS_NATS)}`,
    `ferry / floor: ${verdict(vsFloor, TARGET_VS_FLOOR)}`,
  ];
  for (const line of lines) console.log(line);
  const table = [
    "| system | per pull / fetch | records/s | payload MB/s | ratio vs floor | ratio vs NATS best |",
    "|---|---:|---:|---:|---:|---:|",
    row(
      `ferry raw frames, \`FerryClient\` (median of ${CATCHUP_ROUNDS})`,
      `${CATCHUP_PULL_RECORDS}`,
      ferry,
    ),
    row("ferry raw frames, `FerryClient`", `${CATCHUP_SMALL_PULL_RECORDS}`, figures.ferrySmall),
    row(
      `floor: same frames from memory, same client (median of ${CATCHUP_ROUNDS})`,
      `${CATCHUP_PULL_RECORDS}`,
      floor,
    ),
    row(
      "floor: same frames from memory, same client",
      `${CATCHUP_SMALL_PULL_RECORDS}`,
      figures.floorSmall,
    ),
    row("raw read of the segment files (`Deno.readFile`), no check", "whole file", rawRead),
    row(
      "raw read of the segment files + the client's one-pass check",
      `whole file, checked per ${CATCHUP_PULL_RECORDS}`,
      rawChecked,
    ),
    ...nats.map((drain) =>
      row(
        `NATS JetStream, ${drain.client}${drain === best ? " (best)" : ""}`,
        `${drain.fetchMessages}`,
        rateOf(drain),
      )
    ),
  ];
  await appendResults(
    `Replication: catch-up drain, ferry vs the floor vs NATS JetStream${quick ? " (quick)" : ""}`,
    [
      `One puller drains ${formatNumber(count)} records of ${CATCHUP_RECORD_BYTES} bytes; only ` +
      "the drain is timed, the backlog is written before (and is in the page cache for all).",
      "",
      "- ferry: a real primary process (start task permissions); `GET /v1/wal` with " +
      "`Accept: application/x-ferry-frames`, `replica_id`, `max_count` as in the table; the " +
      "primary serves segment records from the file's bytes (one read of the byte range, headers " +
      "walked, no decode), and `FerryClient.pullFrames` checks every CRC in one pass over each " +
      "body; the bench checks every LSN and size. Backlog appended straight into the spool " +
      `(${figures.backlog.segments} segment(s) of ${
        quick ? CATCHUP_SEGMENT_BYTES_QUICK / MIB_BYTES : 64
      } MiB at most; the newest, active one holds ` +
      `${formatNumber(figures.backlog.newestSegmentRecords)} records), marked applied; slot lag ` +
      "cap off, no pruning. The primary starts after the backlog is written: records come from " +
      "the segment files through the seek index (its sidecar, or built by the first read), or " +
      "from the in-memory tail for whatever it holds after start-up.",
      "- floor: bench/catchup_floor.ts, a separate Deno process holding the same segment files " +
      "in one buffer; `Deno.serve` answers each pull with the byte range of that buffer and the " +
      "same headers; drained by the same client code. ferry and the floor are drained " +
      `alternately (ferry first, then the floor first), ${CATCHUP_ROUNDS} times each at ` +
      `${CATCHUP_PULL_RECORDS} per pull ` +
      `(ferry: ${runs(figures.ferryRates)}; floor: ${runs(figures.floorRates)} records/s).`,
      "- raw read: the bench process reads each segment file whole and checks it as the client " +
      `checks pulls of ${CATCHUP_PULL_RECORDS} records, no HTTP.`,
      `- NATS: nats-server ${figures.natsVersion} (Debian) with \`-js\`, file storage stream, ` +
      "one durable pull consumer per drain (ack policy none, `max_ack_pending` 100000), " +
      "`fetch` as in the table, with npm's two JavaScript clients (nats@2.29.3; " +
      "@nats-io/jetstream@3.4.0 over @nats-io/transport-node@3.4.0) under Deno's Node " +
      'compatibility; sequences and sizes checked. "NATS best" is the fastest of these.',
      "",
      ...table,
      "",
      `Targets: ${lines.join("; ")}.`,
    ],
  );
}

// ---- resume ----

interface TimedPull {
  ms: number;
  records: number;
}

/** One raw-frame pull of `RESUME_PULL_RECORDS` after `since`, timed from request to decoded body. */
async function timedPull(
  client: FerryClient,
  replicaId: string,
  since: number,
  expected: number,
): Promise<TimedPull> {
  const started = performance.now();
  const pull = await client.pullFrames({
    replicaId,
    sinceLsn: since,
    maxCount: RESUME_PULL_RECORDS,
  });
  const elapsed = performance.now() - started;
  if (pull.corrupt) throw new Error(`corrupt frame after ${since}: ${pull.corrupt.reason}`);
  if (pull.frames.length !== expected || pull.frames[0]?.lsn !== since + 1) {
    throw new Error(`the pull after ${since} brought ${pull.frames.length} records`);
  }
  return { ms: elapsed, records: pull.frames.length };
}

/** The pulls measured on one freshly started primary (ms). */
interface ResumePulls {
  /** The first pull the process serves: from the middle (cold index, cold code on both sides). */
  first: number;
  /** The next `RESUME_WARM_PULLS` from the middle (the first of them is "the second request"). */
  warm: number[];
  /** The first pull from another sealed segment (a quarter in), once the process is warm. */
  coldIndex: number;
  /** The next `RESUME_WARM_PULLS` from that segment. */
  coldIndexWarm: number[];
  tail: number[];
}

/** Registers `replicaId` at `since`, pulls `1 + RESUME_WARM_PULLS` times, unregisters it. */
async function pullSeries(
  client: FerryClient,
  replicaId: string,
  since: number,
): Promise<number[]> {
  await client.register(replicaId, { sinceLsn: since });
  const times: number[] = [];
  for (let i = 0; i <= RESUME_WARM_PULLS; i++) {
    times.push((await timedPull(client, replicaId, since, RESUME_PULL_RECORDS)).ms);
  }
  // The slots go again: every start opens the same state (no slot) as the empty one.
  await client.unregister(replicaId);
  return times;
}

/**
 * On a primary that just started: the middle series first (its first pull is the process's first
 * one), then a series from a quarter in (a sealed segment no pull touched yet: its seek index is
 * loaded from its sidecar, in a process whose code is warm), then the tail.
 */
async function measurePulls(node: Node, count: number): Promise<ResumePulls> {
  const client = new FerryClient(node.base);
  const [first, ...warm] = await pullSeries(client, "resume-middle", Math.floor(count / 2));
  const [coldIndex, ...coldIndexWarm] = await pullSeries(
    client,
    "resume-quarter",
    Math.floor(count / 4),
  );
  const tail = (await pullSeries(client, "resume-tail", count - RESUME_PULL_RECORDS)).slice(1);
  const status = await getJson(node.base, "/v1/status");
  if (status.oldest_lsn !== 1) throw new Error(`the spool was pruned: ${status.oldest_lsn}`);
  return { first: first!, warm, coldIndex: coldIndex!, coldIndexWarm, tail };
}

type StartKind = "empty" | "full" | "fullNoRecord";

/** The clean shutdown record of the bench spool's timeline directory. */
function cleanShutdownPath(dataDir: string): string {
  return joinPath(dataDir, "wal", timelineDirName(1), "clean.shutdown");
}

/**
 * `RESUME_STARTS` rounds of: empty spool, full spool (the previous stop was clean: its record is
 * there), full spool without the record (removed, as a crash after writes leaves none: the newest
 * segment is scanned). Each start is timed to `ferry.started`; the pulls are measured on the
 * full starts. Every stop is a SIGTERM (a clean close, which writes the record again).
 */
async function measureStarts(
  dirs: Record<"empty" | "full", string>,
  backlog: { count: number; segments: number },
): Promise<{ startMs: Record<StartKind, number[]>; pulls: ResumePulls[] }> {
  const startMs: Record<StartKind, number[]> = { empty: [], full: [], fullNoRecord: [] };
  const pulls: ResumePulls[] = [];
  for (let run = 0; run < RESUME_STARTS; run++) {
    for (const kind of ["empty", "full", "fullNoRecord"] as const) {
      const dataDir = kind === "empty" ? dirs.empty : dirs.full;
      const record = cleanShutdownPath(dataDir);
      if (kind === "fullNoRecord") await Deno.remove(record);
      else await Deno.stat(record); // the previous stop left it
      const started = performance.now();
      const node = await startPrimary(dataDir, [
        ...PRIMARY_RETAIN_FLAGS,
        ...PRIMARY_NO_LAG_CAP_FLAGS,
      ]);
      startMs[kind].push(performance.now() - started);
      try {
        const recovered = await node.process.waitFor("ferry.recovered");
        const expectedSegments = kind === "empty" ? 1 : backlog.segments;
        if (recovered.segments !== expectedSegments) {
          throw new Error(`${kind}: recovered ${recovered.segments} segments`);
        }
        if (kind === "full") pulls.push(await measurePulls(node, backlog.count));
      } finally {
        await stop(node);
      }
    }
  }
  return { startMs, pulls };
}

/** Start-up with a ~1 GiB spool vs an empty one; a pull from the middle (cold, warm) vs the tail. */
export async function runResumeBench(): Promise<void> {
  const quick = quickMode();
  const spoolBytes = quick ? RESUME_SPOOL_BYTES_QUICK : RESUME_SPOOL_BYTES_FULL;
  const count = Math.ceil(spoolBytes / frameV3ByteLength(RESUME_RECORD_BYTES));
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-resume-" });
  try {
    const dirs = { full: joinPath(dir, "full"), empty: joinPath(dir, "empty") };
    const built = performance.now();
    const { segments, bytes } = await buildBacklog(dirs.full, count, RESUME_RECORD_BYTES);
    console.log(
      `spool: ${formatNumber(count)} records of ${RESUME_RECORD_BYTES} bytes in ${segments} ` +
        `segments (${segments - 1} sealed), built in ${ms(performance.now() - built)}`,
    );
    // One unmeasured start of each creates the files a first start creates and warms the caches.
    for (const dataDir of [dirs.empty, dirs.full]) {
      await stop(await startPrimary(dataDir, PRIMARY_RETAIN_FLAGS));
    }
    const { startMs, pulls } = await measureStarts(dirs, { count, segments });
    const figures = resumeFigures(startMs, pulls);
    for (const line of resumeSummary(figures, segments)) console.log(line);
    await appendResults(
      `Replication: resume from a large spool${quick ? " (quick)" : ""}`,
      resumeResultLines(figures, { count, segments, bytes }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The medians the resume bench reports. */
interface ResumeFigures {
  startEmpty: number;
  startFull: number;
  startNoRecord: number;
  /** Each start's first pull (cold index, cold code), in order. */
  firsts: number[];
  first: number;
  second: number;
  warm: number;
  coldIndex: number;
  coldIndexWarm: number;
  tail: number;
}

function resumeFigures(startMs: Record<StartKind, number[]>, pulls: ResumePulls[]): ResumeFigures {
  const all = (pick: (p: ResumePulls) => number[]) => pulls.flatMap(pick);
  return {
    startEmpty: median(startMs.empty),
    startFull: median(startMs.full),
    startNoRecord: median(startMs.fullNoRecord),
    firsts: pulls.map((p) => p.first),
    first: median(pulls.map((p) => p.first)),
    second: median(pulls.map((p) => p.warm[0]!)),
    warm: median(all((p) => p.warm)),
    coldIndex: median(pulls.map((p) => p.coldIndex)),
    coldIndexWarm: median(all((p) => p.coldIndexWarm)),
    tail: median(all((p) => p.tail)),
  };
}

function resumeSummary(f: ResumeFigures, segments: number): string[] {
  return [
    `start-up to ferry.started (median of ${RESUME_STARTS}): empty spool ${ms(f.startEmpty)}, ${
      segments - 1
    } sealed segments ${ms(f.startFull)} (ratio ${ratio(f.startFull, f.startEmpty)}), without ` +
    `the clean shutdown record ${ms(f.startNoRecord)} (ratio ${
      ratio(f.startNoRecord, f.startEmpty)
    })`,
    `pull of ${RESUME_PULL_RECORDS} from the middle: first pull of a fresh primary ${
      ms(f.first)
    } (${f.firsts.map(ms).join(", ")}), second ${ms(f.second)}, warm ${ms(f.warm)} (cold/warm ${
      ratio(f.first, f.warm)
    }); first pull of another sealed segment once warm ${ms(f.coldIndex)}, then ${
      ms(f.coldIndexWarm)
    } (cold/warm ${ratio(f.coldIndex, f.coldIndexWarm)}); tail ${ms(f.tail)}`,
  ];
}

function resumeResultLines(
  f: ResumeFigures,
  backlog: { count: number; segments: number; bytes: number },
): string[] {
  const { count, segments } = backlog;
  const warmSamples = RESUME_STARTS * RESUME_WARM_PULLS;
  return [
    `Spool of ${formatNumber(count)} records of ${RESUME_RECORD_BYTES} bytes ` +
    `(${(backlog.bytes / MIB_BYTES).toFixed(0)} MiB, ${segments} segments of 64 MiB at most: ${
      segments - 1
    } sealed), appended straight into the spool and marked applied in the materialised ` +
    "state; no pruning. The page cache is warm (nothing is dropped: other work shares the " +
    'machine), so "cold" means the segment\'s seek index is not loaded yet, not a cold disk.',
    "",
    "Start-up: from spawning the primary process (start task permissions) to its " +
    `\`ferry.started\` log line, median of ${RESUME_STARTS} rounds (empty, full, full without ` +
    "the record) after one warm-up start each; every stop is a SIGTERM. Sealed segments are " +
    "sized from the manifest and never read. The newest segment is taken as the clean shutdown " +
    "record of the previous stop describes it (one read of its last frame); without the record " +
    "(removed by the bench, as a crash after writes leaves none) it is scanned once, every CRC " +
    "checked (its SHA-256 is computed later, in the background, as after a clean stop).",
    "",
    "| start-up with | ms | ratio vs empty |",
    "|---|---:|---:|",
    `| empty spool | ${f.startEmpty.toFixed(1)} | 1.00 |`,
    `| ${segments - 1} sealed segments + active, clean shutdown record | ${
      f.startFull.toFixed(1)
    } | ${ratio(f.startFull, f.startEmpty)} |`,
    `| same, no record (the newest segment scanned) | ${f.startNoRecord.toFixed(1)} | ${
      ratio(f.startNoRecord, f.startEmpty)
    } |`,
    "",
    `Pulls of \`max_count\` ${RESUME_PULL_RECORDS} as raw frames (registered replica, CRC ` +
    "checked), timed at the client from request to decoded body, on each of the full starts " +
    "above (the records of the newest segment are read from its file: the tail fills with new " +
    "appends). First pull of a fresh primary: the first request after registering, from the " +
    "middle (LSN " + Math.floor(count / 2) + "): that segment's seek index is loaded from its " +
    "sidecar, and the code of the pull path runs for the first time in both processes (the " +
    "bench's client is fresh only at the first start). Then a quarter in (LSN " +
    Math.floor(count / 4) + "), a segment no pull touched yet, once the process is warm: the " +
    "seek index alone is cold.",
    "",
    "| pull from | ms | ratio vs tail |",
    "|---|---:|---:|",
    `| middle, first pull of a fresh primary (median of ${RESUME_STARTS}: ${
      f.firsts.map((v) => v.toFixed(1)).join(", ")
    }) | ${f.first.toFixed(1)} | ${ratio(f.first, f.tail)} |`,
    `| middle, second request (median of ${RESUME_STARTS}) | ${f.second.toFixed(1)} | ${
      ratio(f.second, f.tail)
    } |`,
    `| middle, warm (median of ${warmSamples}, second included) | ${f.warm.toFixed(1)} | ${
      ratio(f.warm, f.tail)
    } |`,
    `| quarter, first pull of that segment in a warm process (median of ${RESUME_STARTS}) | ${
      f.coldIndex.toFixed(1)
    } | ${ratio(f.coldIndex, f.tail)} |`,
    `| quarter, warm (median of ${warmSamples}) | ${f.coldIndexWarm.toFixed(1)} | ${
      ratio(f.coldIndexWarm, f.tail)
    } |`,
    `| tail (median of ${warmSamples}) | ${f.tail.toFixed(1)} | 1.00 |`,
    "",
    `Cold / warm middle (first pull of a fresh primary): ${ratio(f.first, f.warm)}. ` +
    `Cold / warm seek index in a warm process: ${ratio(f.coldIndex, f.coldIndexWarm)}.`,
  ];
}

if (import.meta.main) {
  const benches: Record<string, () => Promise<void>> = {
    catchup: runCatchupBench,
    resume: runResumeBench,
  };
  for (const name of Deno.args.filter((arg) => !arg.startsWith("--"))) await benches[name]?.();
}
