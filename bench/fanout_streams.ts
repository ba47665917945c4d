/**
 * The streaming half of the fan-out benchmark alone, for iterating on the per-stream cost: a
 * server process that is only a `StreamHub` behind `Deno.serve` (no spool, no state, no write
 * path), fed the group commits of the fan-out load (pre-encoded v3 frames, published through a
 * real `CommitFeed` at the same rate), and the fan-out readers (bench/fanout_peers.ts, streaming
 * mode). Prints the server's CPU per delivered record (user and system) and the lag from publish
 * to decode. What it measures is what streams add to a primary, free of the write path's noise.
 *
 * With `--burst` every commit is published at once (each stream queues them all: a reader far
 * behind), and the figure that matters is the CPU per delivered record, not the lag.
 *
 * Run: `deno run -A bench/fanout_streams.ts [seconds] [--replicas=N] [--records-per-commit=R]
 * [--burst] [--profile]`
 */

import { silentLogger } from "../src/core/log.ts";
import { STREAM_MAX_MS_DEFAULT, STREAM_TICK_MS } from "../src/core/limits.ts";
import { STREAM_UNSENT_BYTES_DEFAULT } from "../src/core/limits.ts";
import { StreamHub } from "../src/replication/stream_hub.ts";
import { CommitFeed, type GroupCommit } from "../src/wal/commit_feed.ts";
import { frameV3ByteLength, writeFrameV3 } from "../src/wal/frame.ts";
import { emptyRawFrames, type RawFrames } from "../src/wal/range_read.ts";
import { freePort } from "../tests/helpers/process.ts";
import { lags } from "./fanout_bench.ts";
import process from "node:process";
import { nowMs, type ReadersOutput, type WriteReceipt } from "./fanout_peers.ts";
import { spawnPeer } from "./proc_stats.ts";
import {
  FANOUT_REPLICAS,
  FANOUT_WRITES_PER_SECOND,
  readerGroups,
  receiptsOf,
  spawnFerryReaders,
} from "./fanout_common.ts";
import { connect, type Profile, selfTimes } from "./profile.ts";
import { positionHeaders } from "../src/http/routes/wal.ts";

const RECORDS_PER_SECOND = FANOUT_WRITES_PER_SECOND;
const RECORDS_PER_COMMIT_DEFAULT = 3.4;
const SECONDS_DEFAULT = 10;
const READERS_LEAD_MS = 8000;
const DEADLINE_SLACK_MS = 60_000;
const SCRIPT = "bench/fanout_streams.ts";

/** What the server process is told. */
interface ServerTask {
  role: "server";
  port: number;
  records: number;
  recordsPerCommit: number;
  /** Every commit at once at `startAtMs` (readers far behind: queued chunks), not at the rate. */
  burst: boolean;
  startAtMs: number;
  deadlineMs: number;
}

interface ServerOutput {
  /** `[lastLsn, publishedMs, publishedMs]` per commit: the shape of the writer's receipts. */
  writes: WriteReceipt[];
  userS: number;
  systemS: number;
}

/** The group commits of the load: R records on average each, real frames, encoded ahead. */
function encodeCommits(records: number, recordsPerCommit: number): GroupCommit[] {
  const encoder = new TextEncoder();
  const commits: GroupCommit[] = [];
  let lsn = 0;
  let owed = 0;
  while (lsn < records) {
    owed += recordsPerCommit;
    const count = Math.min(records - lsn, Math.max(1, Math.floor(owed)));
    owed -= count;
    const payloads = Array.from({ length: count }, (_, i) =>
      encoder.encode(JSON.stringify({
        op: "put",
        collection: "fanout",
        key: `k${(lsn + i) % 1000}`,
        value: { i: lsn + i },
      })));
    const bytes = new Uint8Array(payloads.reduce((n, p) => n + frameV3ByteLength(p.byteLength), 0));
    let offset = 0;
    for (const payload of payloads) {
      lsn += 1;
      const fields = { term: 1, ownershipEpoch: 0, lsn, timestampMs: Date.now(), payload };
      offset += writeFrameV3(bytes, offset, fields);
    }
    commits.push({ firstLsn: lsn - count + 1, lastLsn: lsn, bytes });
  }
  return commits;
}

/** Catch-up reads over the published commits (whole commits: enough for this load). */
function readerOf(commits: GroupCommit[], published: () => number) {
  return (sinceLsn: number, maxCount: number): Promise<RawFrames> => {
    const raw = emptyRawFrames(sinceLsn);
    for (const commit of commits.slice(0, published())) {
      if (commit.lastLsn <= raw.lastLsn || raw.count >= maxCount) continue;
      raw.chunks.push(commit.bytes);
      raw.count += commit.lastLsn - commit.firstLsn + 1;
      raw.byteLength += commit.bytes.byteLength;
      raw.lastLsn = commit.lastLsn;
    }
    return Promise.resolve(raw);
  };
}

function serveStreams(hub: StreamHub, currentLsn: () => number, port: number): Deno.HttpServer {
  return Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, async (request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/v1/wal") return Response.json({}, { status: 404 });
    const startLsn = Number(url.searchParams.get("since_lsn") ?? 0);
    const body = await hub.open({
      replicaId: url.searchParams.get("replica_id") ?? undefined,
      startLsn,
      maxCount: 1000,
      maxBytes: 1 << 20,
      signal: request.signal,
    });
    const position = { currentLsn: currentLsn(), oldestLsn: 1, term: 1, timeline: 1 };
    return new Response(body, {
      headers: positionHeaders({ ...position, startLsn: startLsn + 1 }),
    });
  });
}

async function runServer(task: ServerTask): Promise<ServerOutput> {
  const commits = encodeCommits(task.records, task.recordsPerCommit);
  const feed = new CommitFeed();
  let published = 0;
  let currentLsn = 0;
  const sent = new Map<string, number>();
  const hub = new StreamHub({
    currentLsn: () => currentLsn,
    onCommit: (listener) => feed.subscribe(listener),
    read: readerOf(commits, () => published),
    control: () => ({ currentLsn, commitLsn: currentLsn, term: 1, timeline: 1 }),
    noteSent: (id, lsn) => sent.set(id, Math.max(sent.get(id) ?? 0, lsn)),
    slotOf: () => "live",
    unsentBytesMax: STREAM_UNSENT_BYTES_DEFAULT,
    maxMs: STREAM_MAX_MS_DEFAULT,
    logger: silentLogger,
    clock: () => Date.now(),
  });
  const ticker = setInterval(() => hub.tick(), STREAM_TICK_MS);
  const server = serveStreams(hub, () => currentLsn, task.port);
  console.error("ready");
  const intervalMs = task.burst ? 0 : 1000 * task.recordsPerCommit / RECORDS_PER_SECOND;
  const writes: WriteReceipt[] = [];
  await new Promise((r) => setTimeout(r, Math.max(0, task.startAtMs - nowMs())));
  const before = process.cpuUsage();
  while (published < commits.length) {
    while (published < commits.length && task.startAtMs + published * intervalMs <= nowMs()) {
      const commit = commits[published++]!;
      currentLsn = commit.lastLsn;
      feed.published(commit);
      const at = nowMs();
      for (let lsn = commit.firstLsn; lsn <= commit.lastLsn; lsn++) writes.push([lsn, at, at]);
    }
    await new Promise((r) =>
      setTimeout(r, Math.max(0, task.startAtMs + published * intervalMs - nowMs()))
    );
  }
  while (hub.size > 0) await new Promise((r) => setTimeout(r, 5));
  const used = process.cpuUsage(before);
  clearInterval(ticker);
  await server.shutdown();
  return { writes, userS: used.user / 1e6, systemS: used.system / 1e6 };
}

function option(args: string[], name: string, fallback: number): number {
  const value = args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
  return value === undefined ? fallback : Number(value);
}

async function main(args: string[]): Promise<void> {
  const seconds = Number(args.find((a) => !a.startsWith("--")) ?? SECONDS_DEFAULT);
  const replicas = option(args, "replicas", FANOUT_REPLICAS);
  const recordsPerCommit = option(args, "records-per-commit", RECORDS_PER_COMMIT_DEFAULT);
  const records = seconds * RECORDS_PER_SECOND;
  const port = freePort();
  const startAtMs = nowMs() + READERS_LEAD_MS;
  const deadlineMs = startAtMs + seconds * 1000 + DEADLINE_SLACK_MS;
  const inspectPort = freePort();
  const profiling = args.includes("--profile");
  const inspect = profiling ? [`--inspect=127.0.0.1:${inspectPort}`] : [];
  const server = spawnPeer(
    SCRIPT,
    [...inspect, `--allow-net=127.0.0.1:${port}`],
    {
      role: "server",
      port,
      records,
      recordsPerCommit,
      burst: args.includes("--burst"),
      startAtMs,
      deadlineMs,
    } satisfies ServerTask,
  );
  await server.ready;
  const inspector = profiling ? await connect(inspectPort) : undefined;
  const readers = spawnFerryReaders(`http://127.0.0.1:${port}`, {
    mode: "stream",
    groups: readerGroups("s", replicas),
    untilLsn: records,
    measureFromMs: startAtMs,
    deadlineMs,
  });
  try {
    if (inspector) {
      await new Promise((r) => setTimeout(r, startAtMs - nowMs()));
      await inspector.send("Profiler.enable");
      await inspector.send("Profiler.setSamplingInterval", { interval: 200 });
      await inspector.send("Profiler.start");
    }
    const outputs = await Promise.all(readers.map((r) => r.output<ReadersOutput>()));
    if (inspector) {
      const { profile } = (await inspector.send("Profiler.stop")) as { profile: Profile };
      inspector.close();
      await Deno.writeTextFile("bench/profiles/fanout-streams.cpuprofile", JSON.stringify(profile));
      const times = selfTimes(profile);
      const total = times.reduce((sum, [, t]) => sum + t, 0);
      for (const [name, time] of times.slice(0, 40)) {
        console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`);
      }
    }
    const { writes, userS, systemS } = await server.output<ServerOutput>();
    const delivered = replicas * records;
    const all = outputs.flatMap((o) => o.replicas);
    const { ackLag } = lags(writes, receiptsOf(all), delivered);
    const perRecord = (s: number) => ((s / delivered) * 1e6).toFixed(3);
    console.log(
      `server CPU ${(userS + systemS).toFixed(2)} s (user ${userS.toFixed(2)}, system ${
        systemS.toFixed(2)
      }); µs per delivered record ${perRecord(userS + systemS)} (user ${perRecord(userS)}, ` +
        `system ${perRecord(systemS)}); lag p50 ${ackLag.p50.toFixed(1)} p99 ${
          ackLag.p99.toFixed(1)
        } ms; ${(delivered / all.reduce((n, r) => n + r.receipts.length, 0)).toFixed(2)} ` +
        `records per run; readers CPU ${outputs.map((o) => o.cpuS.toFixed(1)).join(" + ")} s`,
    );
  } finally {
    for (const peer of [server, ...readers]) await peer.kill();
  }
}

if (import.meta.main) {
  const task = Deno.args[0]?.startsWith("{") ? JSON.parse(Deno.args[0]) as ServerTask : undefined;
  if (task) {
    const deadline = setTimeout(() => Deno.exit(1), task.deadlineMs - nowMs());
    const output = await runServer(task);
    clearTimeout(deadline);
    console.log(JSON.stringify(output));
    Deno.exit(0);
  } else {
    await main(Deno.args);
  }
}
