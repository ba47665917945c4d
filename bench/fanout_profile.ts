/**
 * The fan-out load of bench/fanout_bench.ts in one mode, for iterating on the primary's cost per
 * delivered record: a fresh primary, the readers (`stream`, `poll`, or `none`: the write path
 * alone) and the open-loop writer, then the primary's CPU over the write phase, per delivered
 * record, and the lag. `floor` runs the same writer against bench/write_floor.ts (the leanest Deno
 * program that makes each write durable before answering) instead of a primary: what the write
 * path costs at this rate with nothing of ferry's own; `stream-floor` runs the streaming readers
 * against bench/stream_floor.ts (the same, sending each group commit to every stream). With
 * `--profile` the primary runs under the V8 inspector, its CPU profile over the write phase goes
 * to bench/profiles/fanout-<mode>.cpuprofile and its top self times are printed (the inspector
 * adds some CPU of its own: compare profiled runs with profiled runs).
 *
 * Run: `deno run -A bench/fanout_profile.ts stream|poll|none|floor|stream-floor [seconds]
 * [--profile] [--replicas=N]`
 */

import { numberOption, positionalArgs } from "./args.ts";
import { joinPath } from "../src/core/files.ts";
import { freePort, killProcess, startProcess, startTaskArgs } from "../tests/helpers/process.ts";
import { lags } from "./fanout_bench.ts";
import {
  FANOUT_PEERS,
  FANOUT_READERS_LEAD_MS,
  FANOUT_REPLICAS,
  FANOUT_WRITES_PER_SECOND,
  readerGroups,
  receiptsOf,
  spawnFerryReaders,
} from "./fanout_common.ts";
import { nowMs, type ReadersOutput, type WriterOutput } from "./fanout_peers.ts";
import { connect, type Profile, selfTimes } from "./profile.ts";
import { clockTicksPerSecond, type Peer, spawnPeer } from "./proc_stats.ts";
import { withFloor } from "./write_peers.ts";

const SECONDS_DEFAULT = 10;
const STREAM_FLOOR = new URL("./stream_floor.ts", import.meta.url).pathname;
const DEADLINE_SLACK_MS = 120_000;
const SAMPLING_INTERVAL_US = 200;
const TOP_FUNCTIONS = 40;
/** Threads below this share of a core are left out of the per-thread line. */
const THREAD_SHARE_SHOWN_MIN = 0.01;

interface Options {
  mode: "stream" | "poll" | "none" | "floor" | "stream-floor";
  seconds: number;
  profile: boolean;
  replicas: number;
}

function parseOptions(args: string[]): Options {
  const mode = (args[0] ?? "stream") as Options["mode"];
  if (!["stream", "poll", "none", "floor", "stream-floor"].includes(mode)) {
    throw new Error("mode: stream|poll|none|floor|stream-floor");
  }
  const positional = positionalArgs(args);
  const replicas = numberOption("replicas", FANOUT_REPLICAS, args);
  return {
    mode,
    seconds: Number(positional[1] ?? SECONDS_DEFAULT),
    profile: args.includes("--profile"),
    replicas: mode === "none" || mode === "floor" ? 0 : replicas,
  };
}

function spawnReaders(options: Options, base: string, times: number[]): Peer[] {
  const { replicas } = options;
  if (options.mode === "none" || options.mode === "floor") return [];
  const mode = options.mode === "poll" ? "poll" : "stream";
  return spawnFerryReaders(base, {
    mode,
    groups: readerGroups(mode, replicas),
    untilLsn: options.seconds * FANOUT_WRITES_PER_SECOND,
    measureFromMs: times[0]!,
    deadlineMs: times[1]!,
  });
}

async function printProfile(profile: Profile, mode: string): Promise<void> {
  await Deno.mkdir(new URL("./profiles/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(
    new URL(`./profiles/fanout-${mode}.cpuprofile`, import.meta.url),
    JSON.stringify(profile),
  );
  const times = selfTimes(profile);
  const total = times.reduce((sum, [, t]) => sum + t, 0);
  for (const [name, time] of times.slice(0, TOP_FUNCTIONS)) {
    console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`);
  }
}

async function run(options: Options): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-fanout-profile-" });
  const port = freePort();
  const inspectPort = freePort();
  const args = startTaskArgs(joinPath(dir, "data"), port);
  if (options.profile) args.splice(1, 0, `--inspect=127.0.0.1:${inspectPort}`);
  const primary = startProcess(args);
  const peers: Peer[] = [];
  let closeInspector = () => {};
  try {
    await primary.waitFor("ferry.started");
    const inspector = options.profile ? await connect(inspectPort) : undefined;
    closeInspector = inspector?.close ?? closeInspector;
    const base = `http://127.0.0.1:${port}`;
    let profile: Profile | undefined;
    await measureTarget(options, { base, port, pid: primary.child.pid }, peers, {
      onStart: async () => {
        if (!inspector) return;
        await inspector.send("Profiler.enable");
        await inspector.send("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
        await inspector.send("Profiler.start");
      },
      onEnd: async () => {
        if (!inspector) return;
        profile = ((await inspector.send("Profiler.stop")) as { profile: Profile }).profile;
      },
    });
    await printSyncs(base);
    if (profile) await printProfile(profile, options.mode);
  } finally {
    for (const peer of peers) await peer.kill();
    closeInspector();
    await killProcess(primary, "SIGTERM");
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The writer against a floor program, alone (`floor`: bench/write_floor.ts) or with streaming
 * readers (`stream-floor`: bench/stream_floor.ts): the floor's CPU over the write phase.
 */
async function runFloor(options: Options): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-fanout-floor-" });
  const program = options.mode === "stream-floor" ? STREAM_FLOOR : undefined;
  const peers: Peer[] = [];
  try {
    await withFloor(dir, async (floor) => {
      await measureTarget(options, { ...floor, plain: true }, peers);
    }, program);
  } finally {
    for (const peer of peers) await peer.kill();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The readers of the mode (none for `none` and `floor`) and the open-loop writer against `target`,
 * added to `peers` (the caller kills them); prints the target's CPU over the write phase, in all
 * and per thread. `onStart` and `onEnd` run just inside that phase (a profiler's start and stop).
 */
async function measureTarget(
  options: Options,
  target: { base: string; port: number; pid: number; plain?: boolean },
  peers: Peer[],
  phase: { onStart?: () => Promise<void>; onEnd?: () => Promise<void> } = {},
): Promise<void> {
  const { base, pid } = target;
  const writes = options.seconds * FANOUT_WRITES_PER_SECOND;
  const startAtMs = nowMs() + FANOUT_READERS_LEAD_MS;
  const deadlineMs = startAtMs + writes + DEADLINE_SLACK_MS;
  const readers = spawnReaders(options, base, [startAtMs, deadlineMs]);
  peers.push(...readers);
  await Promise.all(readers.map((reader) => reader.ready));
  const writer = spawnPeer(FANOUT_PEERS, [`--allow-net=127.0.0.1:${target.port}`], {
    role: "writer",
    base,
    ratePerSecond: FANOUT_WRITES_PER_SECOND,
    count: writes,
    startAtMs,
    deadlineMs,
    plain: target.plain,
  });
  peers.push(writer);
  await new Promise((resolve) => setTimeout(resolve, startAtMs - nowMs()));
  await phase.onStart?.();
  const before = await userSystemTicks(pid);
  const threadsBefore = await threadTicks(pid);
  const { writes: written } = await writer.output<WriterOutput>();
  const outputs = await Promise.all(readers.map((r) => r.output<ReadersOutput>()));
  const after = await userSystemTicks(pid);
  const threadsAfter = await threadTicks(pid);
  const ticksPerS = await clockTicksPerSecond();
  const [userS, systemS] = [0, 1].map((i) => (after[i]! - before[i]!) / ticksPerS);
  const windowS = (nowMs() - startAtMs) / 1000;
  await phase.onEnd?.();
  report(options, { userS: userS!, systemS: systemS!, windowS, written, outputs });
  printThreads(threadsBefore, threadsAfter, ticksPerS * windowS);
}

/** How the group commits' fdatasyncs ran (from the primary's metrics). */
async function printSyncs(base: string): Promise<void> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? 0);
  const commits = value("ferry_wal_fsync_seconds_count");
  const inline = value("ferry_wal_fsync_inline_total");
  const records = value("ferry_wal_group_commit_records_sum");
  console.log(
    `group commits ${commits} (${(records / commits).toFixed(2)} records each), ` +
      `fdatasync inline ${inline} (${((100 * inline) / commits).toFixed(0)}%)`,
  );
}

/** utime + stime of each thread of a process, in clock ticks, by thread id and name. */
async function threadTicks(pid: number): Promise<Map<string, number>> {
  const ticks = new Map<string, number>();
  for await (const entry of Deno.readDir(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${entry.name}`;
    const stat = await Deno.readTextFile(`${dir}/stat`).catch(() => "");
    if (stat === "") continue; // the thread ended
    const name = (await Deno.readTextFile(`${dir}/comm`).catch(() => "?")).trim();
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks.set(`${name} (${entry.name})`, Number(fields[11]) + Number(fields[12]));
  }
  return ticks;
}

/** Each thread's share of a core over the window, busiest first (threads above 1 %). */
function printThreads(
  before: Map<string, number>,
  after: Map<string, number>,
  windowTicks: number,
) {
  const shares = [...after].map(([thread, ticks]) => {
    return [thread, (ticks - (before.get(thread) ?? 0)) / windowTicks] as const;
  }).filter(([, share]) => share >= THREAD_SHARE_SHOWN_MIN).sort((a, b) => b[1] - a[1]);
  console.log(
    `threads: ${shares.map(([t, share]) => `${t} ${(100 * share).toFixed(1)}%`).join(", ")}`,
  );
}

/** utime and stime of a process, in clock ticks. */
async function userSystemTicks(pid: number): Promise<[number, number]> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return [Number(fields[11]), Number(fields[12])];
}

function report(options: Options, figures: {
  userS: number;
  systemS: number;
  windowS: number;
  written: WriterOutput["writes"];
  outputs: ReadersOutput[];
}): void {
  const { userS, systemS, windowS, written, outputs } = figures;
  const cpuS = userS + systemS;
  const delivered = options.replicas * written.length;
  const line = [
    `mode ${options.mode}`,
    `primary CPU ${cpuS.toFixed(2)} s over ${windowS.toFixed(1)} s`,
    `(${((cpuS / windowS) * 100).toFixed(1)}% of a core; user ${userS.toFixed(2)} s, system ${
      systemS.toFixed(2)
    } s)`,
  ];
  if (delivered > 0) {
    line.push(`${((cpuS / delivered) * 1e6).toFixed(2)} µs per delivered record`);
    const replicas = outputs.flatMap((output) => output.replicas);
    const { ackLag } = lags(written, receiptsOf(replicas), delivered);
    const runs = replicas.reduce((n, r) => n + r.receipts.length, 0);
    line.push(`lag p50 ${ackLag.p50.toFixed(1)} p99 ${ackLag.p99.toFixed(1)} ms`);
    line.push(`${(delivered / runs).toFixed(2)} records per run`);
    line.push(`readers CPU ${outputs.map((o) => o.cpuS.toFixed(1)).join(" + ")} s`);
  }
  console.log(line.join("; "));
}

if (import.meta.main) {
  const options = parseOptions(Deno.args);
  const floor = options.mode === "floor" || options.mode === "stream-floor";
  await (floor ? runFloor(options) : run(options));
}
