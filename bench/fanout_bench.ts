/**
 * Fan-out (SPEC.md 13.1): 100 replicas following one primary while a writer sustains 1000
 * single-record writes per second (open loop), in seven modes measured in the same run:
 *
 * - ferry, streaming pulls (`stream=1`, one chunk per group commit per stream);
 * - ferry, long-polls (`await_timeout_ms` 25 000), the mode streams replace;
 * - ferry with the same writer and no reader: the write path's own CPU, which both ferry figures
 *   include (a stream that cost nothing would still leave the ratio at its share);
 * - ferry, streaming pulls with `--stream-batch-ms 4` (group commits batched, one chunk per
 *   stream at most every 4 ms);
 * - the floor program (bench/write_floor.ts) with the same writer and no reader: what the leanest
 *   Deno program that answers durable writes costs at this rate, the bound below any Deno primary;
 * - the stream floor (bench/stream_floor.ts) with the same writer and streaming readers: the
 *   leanest Deno program that also sends each group commit's frames to every stream;
 * - NATS JetStream driven the same way: 100 durable pull consumers in two Deno processes, a
 *   publisher awaiting each PubAck (bench/fanout_nats.ts).
 *
 * Lag is taken per (replica, record) pair, from the writer's answer (ferry's durable answer, NATS's
 * PubAck) to the moment the reader decoded that record, all on one machine. The server's CPU
 * (utime+stime from /proc) over the write phase, divided by the records delivered, gives its cost
 * per delivered record; the readers' own CPU says when the 2-core machine, not the server, is the
 * limit. A last phase writes ~1 GB past a client that reads nothing (tests/helpers/stream_memory.ts)
 * and reports the primary's RSS against the same writes with no stream.
 *
 * Run: `deno task bench fanout` (`--quick` or FERRY_BENCH_QUICK=1: 10 replicas, 5 s, 100 MB).
 * To iterate on one mode: bench/fanout_profile.ts (a primary's CPU, optionally its V8 profile);
 * on the streams alone, free of the write path: bench/fanout_streams.ts.
 */

import { joinPath } from "../src/core/files.ts";
import { type Node, startPrimary, stop } from "../tests/helpers/cluster.ts";
import { runStreamMemory, type StreamMemoryResult } from "../tests/helpers/stream_memory.ts";
import { startNatsServer, stopNatsServer } from "./catchup_nats.ts";
import {
  createFanoutStream,
  type NatsReadersOutput,
  type NatsWriterOutput,
} from "./fanout_nats.ts";
import {
  FANOUT_PEERS,
  FANOUT_READER_PROCESSES,
  FANOUT_READERS_LEAD_MS,
  FANOUT_REPLICAS,
  FANOUT_WRITES_PER_SECOND,
  readerGroups,
  receiptsOf,
  spawnFerryReaders,
} from "./fanout_common.ts";
import { nowMs, type ReadersOutput, type WriterOutput } from "./fanout_peers.ts";
import { cpuMeter, type LagSummary, type Peer, spawnPeer, summarize } from "./proc_stats.ts";
import { appendResults, formatNumber } from "./results.ts";
import { withFloor } from "./write_peers.ts";
import { ensureNatsServer } from "./replication_bench.ts";
import { quickMode } from "./args.ts";

const REPLICAS_FULL = FANOUT_REPLICAS;
const REPLICAS_QUICK = 10;
const WRITES_PER_SECOND = FANOUT_WRITES_PER_SECOND;
const SECONDS_FULL = 20;
const SECONDS_QUICK = 5;
/** Time between spawning the writer and its first write (its own start-up is not measured). */
const WRITER_LEAD_MS = 3000;
const DEADLINE_SLACK_MS = 180_000;
const READY_TIMEOUT_MS = 60_000;
/** The writer must reach this share of its target rate, or the run says so. */
const RATE_SHARE_MIN = 0.97;
const MEMORY_BYTES_FULL = 1e9;
const MEMORY_BYTES_QUICK = 100e6;
/** Targets of the issue. */
const TARGET_STREAM_P99_MS = 50;
const TARGET_CPU_SHARE_OF_POLL = 0.25;
/** The long-poll figure when the target was set: 69 % of a core at 370 writes/s to 100 replicas. */
const ISSUE_POLL_US_PER_RECORD = (0.69 / (370 * 100)) * 1e6;
/** The batch interval of the extra streaming row (`--stream-batch-ms`). */
const STREAM_BATCH_MS = 4;

const NATS_PEERS = "bench/fanout_nats.ts";
const STREAM_FLOOR = new URL("./stream_floor.ts", import.meta.url).pathname;

/** One mode's figures. */
interface ModeResult {
  name: string;
  achievedRate: number;
  ackLag: LagSummary;
  sendLag: LagSummary;
  writeLatency: LagSummary;
  windowS: number;
  serverCpuS: number;
  readerCpuS: number[];
  delivered: number;
  notes: string;
}

interface Plan {
  replicas: number;
  writes: number;
  dir: string;
}

/** The ids of the replicas, spread over the reader processes. */
function idsOf(plan: Plan, prefix: string): string[][] {
  return readerGroups(prefix, plan.replicas);
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
}

async function untilTrue(what: string, check: () => Promise<boolean>): Promise<void> {
  const giveUpAt = Date.now() + READY_TIMEOUT_MS;
  while (!(await check())) {
    if (Date.now() > giveUpAt) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function rateOf(sends: readonly number[]): number {
  return (sends.length - 1) / ((Math.max(...sends) - Math.min(...sends)) / 1000);
}

/** Lag per (replica, record) from per-record receipt times. */
export function lags(
  writes: ReadonlyArray<[number, number, number]>,
  receipts: (visit: (lsn: number, receivedMs: number) => void) => void,
  pairs: number,
): { ackLag: LagSummary; sendLag: LagSummary; writeLatency: LagSummary } {
  const sentAt = new Float64Array(writes.length + 1);
  const ackedAt = new Float64Array(writes.length + 1);
  for (const [seq, sent, acked] of writes) {
    sentAt[seq] = sent;
    ackedAt[seq] = acked;
  }
  const fromAck = new Float64Array(pairs);
  const fromSend = new Float64Array(pairs);
  let filled = 0;
  receipts((lsn, receivedMs) => {
    fromAck[filled] = receivedMs - ackedAt[lsn]!;
    fromSend[filled] = receivedMs - sentAt[lsn]!;
    filled += 1;
  });
  if (filled !== pairs) throw new Error(`${filled} receipts, expected ${pairs}`);
  return {
    ackLag: summarize(fromAck),
    sendLag: summarize(fromSend),
    writeLatency: summarize(Float64Array.from(writes, ([, sent, acked]) => acked - sent)),
  };
}

/** Throws when the readers took so long to get ready that the writer has no time to start. */
function _leadLeft(startAtMs: number): void {
  const left = startAtMs - nowMs();
  if (left < WRITER_LEAD_MS) {
    throw new Error(`the readers were ready ${WRITER_LEAD_MS - left} ms too late for the writer`);
  }
}

/** A server the readers follow: its address, its process, and how to tell they all connected. */
interface Followed {
  base: string;
  port: number;
  pid: number;
  name: string;
  /** The writer posts plain JSON (a floor program) rather than through `FerryClient`. */
  plain?: boolean;
  /** Resolves once the server itself counts every reader (the readers' own word otherwise). */
  allConnected?: () => Promise<void>;
}

/** ferry, streaming or long-polling, against a fresh primary. */
async function runFerry(plan: Plan, mode: "stream" | "poll", batchMs = 0): Promise<ModeResult> {
  let primary: Node | undefined;
  const batch = batchMs > 0 ? ["--stream-batch-ms", String(batchMs)] : [];
  try {
    primary = await startPrimary(joinPath(plan.dir, `ferry-${mode}-${batchMs}`), batch);
    const { base, port } = primary;
    const gauge = mode === "stream" ? "ferry_wal_streams" : "ferry_pull_waiters";
    return await measureFollowers(plan, mode, {
      base,
      port,
      pid: primary.process.child.pid,
      name: mode === "stream"
        ? `ferry, streaming pulls${batch.length > 0 ? `, ${batch.join(" ")}` : ""}`
        : "ferry, long-polls",
      allConnected: () =>
        untilTrue(
          `${plan.replicas} readers on the primary`,
          async () => (await metric(base, gauge)) === plan.replicas,
        ),
    });
  } finally {
    if (primary) await stop(primary).catch((error) => console.error(`stopping primary: ${error}`));
  }
}

/**
 * The same streaming readers and writer against bench/stream_floor.ts: what the leanest Deno
 * program pays to take the durable writes and send each group commit to every stream.
 */
async function runStreamFloor(plan: Plan): Promise<ModeResult> {
  return await withFloor(joinPath(plan.dir, "stream-floor"), (floor) => {
    const name = "floor program (bench/stream_floor.ts), streaming pulls";
    return measureFollowers(plan, "stream", { ...floor, name, plain: true });
  }, STREAM_FLOOR);
}

/** The readers and the open-loop writer against `target`: lags and the target's CPU. */
async function measureFollowers(
  plan: Plan,
  mode: "stream" | "poll",
  target: Followed,
): Promise<ModeResult> {
  const peers: Peer[] = [];
  try {
    const { base, port } = target;
    const flags = [`--allow-net=127.0.0.1:${port}`];
    const startAtMs = nowMs() + FANOUT_READERS_LEAD_MS;
    const deadlineMs = startAtMs + plan.writes + DEADLINE_SLACK_MS;
    const readers = spawnFerryReaders(base, {
      mode,
      groups: idsOf(plan, mode),
      untilLsn: plan.writes,
      measureFromMs: startAtMs,
      deadlineMs,
    });
    peers.push(...readers);
    await Promise.all(readers.map((reader) => reader.ready));
    await target.allConnected?.();
    _leadLeft(startAtMs);
    const writer = spawnPeer(FANOUT_PEERS, flags, {
      role: "writer",
      base,
      ratePerSecond: WRITES_PER_SECOND,
      count: plan.writes,
      startAtMs,
      deadlineMs,
      plain: target.plain,
    });
    peers.push(writer);
    await new Promise((resolve) => setTimeout(resolve, startAtMs - nowMs()));
    const meter = await cpuMeter([target.pid]);
    const { writes } = await writer.output<WriterOutput>();
    const outputs = await Promise.all(readers.map((r) => r.output<ReadersOutput>()));
    const [serverCpuS] = await meter.stop();
    const readerCpuS = outputs.map((output) => output.cpuS);
    const windowS = (nowMs() - startAtMs) / 1000;
    const replicas = outputs.flatMap((output) => output.replicas);
    const figures = lags(writes, receiptsOf(replicas), plan.replicas * plan.writes);
    const receipts = replicas.reduce((n, r) => n + r.receipts.length, 0);
    const acks = replicas.reduce((n, r) => n + r.acks, 0);
    const reconnects = replicas.reduce((n, r) => n + r.reconnects, 0);
    return {
      name: target.name,
      achievedRate: rateOf(writes.map(([, sent]) => sent)),
      ...figures,
      windowS,
      serverCpuS: serverCpuS!,
      readerCpuS,
      delivered: plan.replicas * plan.writes,
      notes: `${(plan.replicas * plan.writes / receipts).toFixed(2)} records per ${
        mode === "stream" ? "received run" : "pull"
      }; ${formatNumber(acks)} acks; ${reconnects} stream ends`,
    };
  } finally {
    for (const peer of peers) await peer.kill();
  }
}

/**
 * The same writer with no reader: against a fresh primary, the write path's own CPU, shared by
 * both ferry modes; against bench/write_floor.ts, what the leanest Deno program pays for the same
 * durable writes. Its "per delivered record" figure divides by the same replicas × writes, so it
 * is the part of each mode's figure that is not delivery.
 */
async function runWritesAlone(plan: Plan, against: "ferry" | "floor"): Promise<ModeResult> {
  if (against === "floor") {
    return await withFloor(joinPath(plan.dir, "floor"), (floor) => {
      const name = "floor program (bench/write_floor.ts), writes alone";
      return measureWriter(plan, { ...floor, name, plain: true });
    });
  }
  let primary: Node | undefined;
  try {
    primary = await startPrimary(joinPath(plan.dir, "ferry-writes"));
    const name = "ferry, writes alone (no reader)";
    return await measureWriter(plan, { ...primary, pid: primary.process.child.pid, name });
  } finally {
    if (primary) await stop(primary).catch((error) => console.error(`stopping primary: ${error}`));
  }
}

/** The open-loop writer against `target` alone; the target's CPU over the write phase. */
async function measureWriter(
  plan: Plan,
  target: { base: string; port: number; pid: number; name: string; plain?: boolean },
): Promise<ModeResult> {
  const startAtMs = nowMs() + WRITER_LEAD_MS;
  const writer = spawnPeer(FANOUT_PEERS, [`--allow-net=127.0.0.1:${target.port}`], {
    role: "writer",
    base: target.base,
    ratePerSecond: WRITES_PER_SECOND,
    count: plan.writes,
    startAtMs,
    deadlineMs: startAtMs + plan.writes + DEADLINE_SLACK_MS,
    plain: target.plain,
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, startAtMs - nowMs()));
    const meter = await cpuMeter([target.pid]);
    const { writes } = await writer.output<WriterOutput>();
    const [serverCpuS] = await meter.stop();
    const none = summarize(new Float64Array(0));
    return {
      name: target.name,
      achievedRate: rateOf(writes.map(([, sent]) => sent)),
      ackLag: none,
      sendLag: none,
      writeLatency: summarize(Float64Array.from(writes, ([, sent, acked]) => acked - sent)),
      windowS: (nowMs() - startAtMs) / 1000,
      serverCpuS: serverCpuS!,
      readerCpuS: [],
      delivered: plan.replicas * plan.writes,
      notes: "its CPU is divided by the same replicas × writes as the other rows",
    };
  } finally {
    await writer.kill();
  }
}

/** NATS JetStream, driven the same way. */
async function runNats(plan: Plan): Promise<ModeResult & { version: string }> {
  await ensureNatsServer();
  const peers: Peer[] = [];
  const storeDir = joinPath(plan.dir, "nats");
  await Deno.mkdir(storeDir);
  const server = await startNatsServer(storeDir);
  try {
    const groups = idsOf(plan, "nats");
    await createFanoutStream(server.port, groups.flat());
    const flags = [
      `--allow-net=127.0.0.1:${server.port}`,
      "--allow-env",
      "--allow-read",
      "--allow-sys",
    ];
    const startAtMs = nowMs() + FANOUT_READERS_LEAD_MS;
    const deadlineMs = startAtMs + plan.writes + DEADLINE_SLACK_MS;
    const readers = groups.map((consumers) =>
      spawnPeer(NATS_PEERS, flags, {
        role: "nats-readers",
        port: server.port,
        consumers,
        untilSeq: plan.writes,
        measureFromMs: startAtMs,
        deadlineMs,
      })
    );
    peers.push(...readers);
    await Promise.all(readers.map((reader) => reader.ready));
    _leadLeft(startAtMs);
    const writer = spawnPeer(NATS_PEERS, flags, {
      role: "nats-writer",
      port: server.port,
      ratePerSecond: WRITES_PER_SECOND,
      count: plan.writes,
      startAtMs,
      deadlineMs,
    });
    peers.push(writer);
    await new Promise((resolve) => setTimeout(resolve, startAtMs - nowMs()));
    const meter = await cpuMeter([server.child.pid]);
    const { writes } = await writer.output<NatsWriterOutput>();
    const outputs = await Promise.all(readers.map((r) => r.output<NatsReadersOutput>()));
    const [serverCpuS] = await meter.stop();
    const readerCpuS = outputs.map((output) => output.cpuS);
    const windowS = (nowMs() - startAtMs) / 1000;
    const consumers = outputs.flatMap((output) => output.consumers);
    const figures = lags(writes, (visit) => {
      for (const consumer of consumers) consumer.receivedMs.forEach((at, i) => visit(i + 1, at));
    }, plan.replicas * plan.writes);
    return {
      name: "NATS JetStream",
      version: server.version,
      achievedRate: rateOf(writes.map(([, sent]) => sent)),
      ...figures,
      windowS,
      serverCpuS: serverCpuS!,
      readerCpuS,
      delivered: plan.replicas * plan.writes,
      notes: "durable pull consumers (`consume`, 1000 messages asked at a time), ack policy none",
    };
  } finally {
    for (const peer of peers) await peer.kill();
    await stopNatsServer(server);
  }
}

function ms(value: number): string {
  return value.toFixed(1);
}

function row(result: ModeResult): string {
  const cpuPercent = (result.serverCpuS / result.windowS) * 100;
  const usPerRecord = (result.serverCpuS / result.delivered) * 1e6;
  const read = result.readerCpuS.length > 0;
  const readers = read
    ? result.readerCpuS.map((s) => `${((s / result.windowS) * 100).toFixed(0)}%`).join(" + ")
    : "–";
  const lag = (value: number) => read ? ms(value) : "–";
  return `| ${result.name} | ${result.achievedRate.toFixed(0)} | ${lag(result.ackLag.p50)} | ${
    lag(result.ackLag.p99)
  } | ${lag(result.ackLag.max)} | ${lag(result.sendLag.p99)} | ${ms(result.writeLatency.p99)} | ${
    cpuPercent.toFixed(1)
  }% | ${usPerRecord.toFixed(2)} | ${readers} |`;
}

function usPerRecord(result: ModeResult): number {
  return (result.serverCpuS / result.delivered) * 1e6;
}

/** Fan-out: ferry streaming vs long-polling vs NATS JetStream, and the stalled-reader memory run. */
export async function runFanoutBench(): Promise<void> {
  const quick = quickMode();
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-fanout-" });
  const plan: Plan = {
    replicas: quick ? REPLICAS_QUICK : REPLICAS_FULL,
    writes: WRITES_PER_SECOND * (quick ? SECONDS_QUICK : SECONDS_FULL),
    dir,
  };
  try {
    const stream = await runFerry(plan, "stream");
    console.log(row(stream));
    const poll = await runFerry(plan, "poll");
    console.log(row(poll));
    const writesAlone = await runWritesAlone(plan, "ferry");
    console.log(row(writesAlone));
    const batched = await runFerry(plan, "stream", STREAM_BATCH_MS);
    console.log(row(batched));
    const floor = await runWritesAlone(plan, "floor");
    console.log(row(floor));
    const floorStream = await runStreamFloor(plan);
    console.log(row(floorStream));
    const nats = await runNats(plan);
    console.log(row(nats));
    const bytes = quick ? MEMORY_BYTES_QUICK : MEMORY_BYTES_FULL;
    const memory = {
      without: await runStreamMemory(joinPath(dir, "memory-without"), {
        bytes,
        stalledStream: false,
      }),
      stalled: await runStreamMemory(joinPath(dir, "memory-stalled"), {
        bytes,
        stalledStream: true,
      }),
    };
    const modes = { stream, poll, writesAlone, batched, floor, floorStream, nats };
    await report({ plan, ...modes, memory, quick });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function verdict(met: boolean): string {
  return met ? "met" : "NOT met";
}

async function report(figures: {
  plan: Plan;
  stream: ModeResult;
  poll: ModeResult;
  writesAlone: ModeResult;
  batched: ModeResult;
  floor: ModeResult;
  floorStream: ModeResult;
  nats: ModeResult & { version: string };
  memory: { without: StreamMemoryResult; stalled: StreamMemoryResult };
  quick: boolean;
}): Promise<void> {
  const { plan, stream, poll, writesAlone, batched, floor, floorStream, nats, memory } = figures;
  const cpuShare = usPerRecord(stream) / usPerRecord(poll);
  const floorShare = usPerRecord(writesAlone) / usPerRecord(poll);
  const aboveWrites = (usPerRecord(stream) - usPerRecord(writesAlone)) /
    (usPerRecord(poll) - usPerRecord(writesAlone));
  const vsNats = stream.ackLag.p99 / nats.ackLag.p99;
  const rates = [stream, poll, nats].map((r) => r.achievedRate / WRITES_PER_SECOND);
  const targets = [
    `stream lag p99 ${ms(stream.ackLag.p99)} ms (target < ${TARGET_STREAM_P99_MS}): ${
      verdict(stream.ackLag.p99 < TARGET_STREAM_P99_MS)
    }`,
    `primary CPU per delivered record, stream / long-poll: ${
      cpuShare.toFixed(3)
    } (target ≤ ${TARGET_CPU_SHARE_OF_POLL}): ${verdict(cpuShare <= TARGET_CPU_SHARE_OF_POLL)}`,
    `of which the write path alone (no reader) / long-poll: ${floorShare.toFixed(3)} (what a ` +
    `stream that cost nothing would reach); above the write path, stream / long-poll: ${
      aboveWrites.toFixed(3)
    }`,
    `the floor program's writes alone / long-poll: ${
      (usPerRecord(floor) / usPerRecord(poll)).toFixed(3)
    } (no Deno primary can go below this share: its writes alone cost that much)`,
    `the floor program's streams (bench/stream_floor.ts) / long-poll: ${
      (usPerRecord(floorStream) / usPerRecord(poll)).toFixed(3)
    }, against the issue's figure ${
      (usPerRecord(floorStream) / ISSUE_POLL_US_PER_RECORD).toFixed(3)
    }` +
    ` (the leanest Deno program that streams the same frames); ferry's streams / the floor's: ${
      (usPerRecord(stream) / usPerRecord(floorStream)).toFixed(2)
    }, lag p99 ${ms(stream.ackLag.p99)} vs ${ms(floorStream.ackLag.p99)} ms`,
    `with --stream-batch-ms ${STREAM_BATCH_MS}: stream / long-poll ${
      (usPerRecord(batched) / usPerRecord(poll)).toFixed(3)
    }, lag p99 ${ms(batched.ackLag.p99)} ms`,
    `against the long-poll figure when the target was set (${
      ISSUE_POLL_US_PER_RECORD.toFixed(1)
    } ` +
    `µs: 69 % of a core at 370 writes/s to 100 replicas): stream ${
      (usPerRecord(stream) / ISSUE_POLL_US_PER_RECORD).toFixed(3)
    }, with --stream-batch-ms ${STREAM_BATCH_MS} ${
      (usPerRecord(batched) / ISSUE_POLL_US_PER_RECORD).toFixed(3)
    }`,
    `ferry stream p99 / NATS p99: ${vsNats.toFixed(2)} (target ≤ 1): ${verdict(vsNats <= 1)}`,
    `writer rate reached (≥ ${RATE_SHARE_MIN * 100}% of ${WRITES_PER_SECOND}/s) in every mode: ${
      verdict(rates.every((share) => share >= RATE_SHARE_MIN))
    }`,
  ];
  for (const line of targets) console.log(line);
  const mib = (kib: number) => (kib / 1024).toFixed(0);
  const grew = (r: StreamMemoryResult) => mib(r.rssMaxKib - r.rssBeforeKib);
  await appendResults(
    `Replication: fan-out, streaming pulls vs long-polls vs NATS JetStream${
      figures.quick ? " (quick)" : ""
    }`,
    [
      `${plan.replicas} replicas in ${FANOUT_READER_PROCESSES} Deno processes follow one server while one ` +
      `writer process sends ${
        formatNumber(plan.writes)
      } single-record writes at ${WRITES_PER_SECOND}/s ` +
      "(open loop: a write goes out at its time whether or not earlier ones were answered). ferry: a " +
      "real primary (start task, default settings); each reader CRC-checks every frame through " +
      "`FerryClient` (`streamFrames`, or `pullFrames` long-polls of up to 1000 records held 25 s) and " +
      "acks its position every 2 s, as a streaming replica does. NATS: nats-server " +
      `${nats.version} (Debian) with JetStream, file storage, one durable pull consumer per reader ` +
      "(`@nats-io/jetstream@3`), a publisher awaiting each PubAck. NATS 2.9 cannot fsync each " +
      "message (its file store syncs every 2 minutes by default); ferry answers a write after its " +
      "fdatasync. Lag per (reader, record): when the reader decoded it minus when the writer got its " +
      "answer (or sent it); CPU: utime+stime from /proc over the write phase (until every reader " +
      "held everything).",
      "",
      "| mode | writes/s | lag p50 ms | lag p99 ms | lag max ms | from send p99 ms | write p99 ms | server CPU (of one core) | server CPU µs per delivered record | readers' CPU (each process, of one core) |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      row(stream),
      row(poll),
      row(writesAlone),
      row(batched),
      row(floor),
      row(floorStream),
      row(nats),
      "",
      `Notes: ${stream.name}: ${stream.notes}. ${poll.name}: ${poll.notes}. ${writesAlone.name}: ${writesAlone.notes}. ${floorStream.name}: ${floorStream.notes}; no slots, history, heartbeats, unsent-bytes cap, validation or state. ${nats.name}: ${nats.notes}.`,
      "",
      `Targets: ${targets.join("; ")}.`,
      "",
      `Memory: a client opens a stream and reads nothing while ${
        formatNumber(memory.stalled.writtenBytes / 1e6)
      } MB are written (large records, 2 writers; tail ${
        memory.stalled.tailBytesMax / 1048576
      } MiB, ` +
      `unsent-bytes cap ${memory.stalled.unsentBytesMax / 1048576} MiB): the stream ended by ` +
      `${JSON.stringify(memory.stalled.endedBy)}; the primary's RSS grew ${
        grew(memory.stalled)
      } MiB ` +
      `(from ${mib(memory.stalled.rssBeforeKib)} MiB, sampled every 100 ms), against ${
        grew(memory.without)
      } MiB for the same writes with no stream open (the rest is the write path and the ` +
      "materialised state).",
    ],
  );
}
