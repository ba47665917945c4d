/**
 * State benchmark: does the primary's materialised state (Deno KV) keep up with batched ingest?
 *
 * A real primary (start task permissions) takes 1M records with 1M distinct keys (rising, then
 * scattered over the key space; then 1M updates of 10 000 keys), in requests of 1000 records from a few concurrent clients (a separate process), as
 * fast as it answers. Meanwhile `/v1/status` is sampled: `current_lsn` and `applied_lsn` with the
 * time of each sample. Printed: ingest rate, apply rate (records over the time from the first write
 * to `applied_lsn` reaching the head), their ratio, the state's lag (p50/p99/max, in ms and
 * records) during the run, and how long after the last acknowledged write the state reached the
 * head (target: within 1 s). The floor: `state_floor.ts` applies the same records into a Deno KV
 * file of its own, alone on the machine, in commits as large as Deno KV takes; then into SQLite
 * and into memory, what other stores would give.
 *
 * Run: `deno task bench state` (`--quick` for 100 000 records).
 */

import { quickMode, stringOption } from "./args.ts";
import { getJson, startPrimary, stop } from "../tests/helpers/cluster.ts";
import { freePort, startProcess, startTaskArgs } from "../tests/helpers/process.ts";
import { connect, type Profile, selfTimes } from "./profile.ts";
import { joinPath } from "../src/core/files.ts";
import { GIB_BYTES } from "../src/core/limits.ts";
import { appendResults, formatNumber, percentile } from "./results.ts";
import {
  FLOOR_STORES,
  type FloorRun,
  type FloorStore,
  KEY_ORDERS,
  keyOf,
  type KeyOrder,
  REWRITTEN_KEYS,
  valueOf,
} from "./state_floor.ts";

const RECORDS_FULL = 1_000_000;
const RECORDS_QUICK = 100_000;
const RECORDS_PER_REQUEST = 1000;
const CLIENTS = 4;
/** How often `/v1/status` is sampled. */
const SAMPLE_MS = 25;
/** How long the state may take to reach the head after the last write before the run fails. */
const CATCH_UP_TIMEOUT_MS = 600_000;
/** No pruning during the run, and no slot is involved. */
const PRIMARY_FLAGS = ["--wal-retain-bytes-min", String(64 * GIB_BYTES)];

/** A wall-clock time comparable across processes on this machine. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

interface PeerOutput {
  firstSendMs: number;
  lastAckMs: number;
  records: number;
  requests: number;
  errors: number;
  firstError: string | null;
}

/** The load: `clients` loops POSTing the next 1000 records until `total` are acknowledged. */
async function runPeer(
  base: string,
  options: { clients: number; total: number; order: KeyOrder },
): Promise<PeerOutput> {
  const { clients, total, order } = options;
  let next = 0;
  let records = 0;
  let requests = 0;
  let errors = 0;
  let firstError: string | null = null;
  let lastAckMs = 0;
  const firstSendMs = nowMs();
  const loop = async () => {
    while (next < total && errors <= 100) {
      const first = next;
      const end = Math.min(total, first + RECORDS_PER_REQUEST);
      next = end;
      const batch = [];
      for (let i = first; i < end; i++) {
        batch.push({
          op: "put",
          collection: "bench",
          key: keyOf(i, order),
          value: valueOf(i),
        });
      }
      const body = JSON.stringify({ records: batch, commit_policy: "local" });
      const response = await fetch(`${base}/v1/records`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const text = await response.text();
      if (response.status !== 200) {
        errors += 1;
        firstError ??= `${response.status} ${text.slice(0, 200)}`;
        continue;
      }
      records += end - first;
      requests += 1;
      lastAckMs = nowMs();
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  return { firstSendMs, lastAckMs, records, requests, errors, firstError };
}

interface Sample {
  atMs: number;
  currentLsn: number;
  appliedLsn: number;
}

/**
 * The state's lag at each sample: how long ago the head was where the state is now (0 when it is
 * at the head), in ms, from the samples themselves (resolution `SAMPLE_MS`).
 */
function lagsMs(samples: readonly Sample[]): number[] {
  const lags: number[] = [];
  let reached = 0;
  for (const sample of samples) {
    if (sample.appliedLsn >= sample.currentLsn) {
      lags.push(0);
      continue;
    }
    while (reached < samples.length && samples[reached]!.currentLsn < sample.appliedLsn) {
      reached += 1;
    }
    lags.push(sample.atMs - samples[Math.min(reached, samples.length - 1)]!.atMs);
  }
  return lags;
}

async function status(base: string): Promise<Sample> {
  const body = await getJson(base, "/v1/status");
  return {
    atMs: nowMs(),
    currentLsn: body.current_lsn as number,
    appliedLsn: body.applied_lsn as number,
  };
}

function spawnPeer(base: string, total: number, order: KeyOrder): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-net=${new URL(base).host}`,
      new URL(import.meta.url).pathname,
      "--peer",
      base,
      String(CLIENTS),
      String(total),
      order,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

/** Samples status until the peer has exited and the state reached the head it left. */
async function sampleUntilCaughtUp(
  base: string,
  peer: Deno.ChildProcess,
): Promise<{ samples: Sample[]; output: PeerOutput; caughtUpMs: number }> {
  const samples: Sample[] = [];
  const outputText = new Response(peer.stdout).text();
  let exited = false;
  const exit = peer.status.then((s) => {
    exited = true;
    return s;
  });
  let deadline = Infinity;
  for (;;) {
    const sample = await status(base);
    samples.push(sample);
    if (exited && deadline === Infinity) deadline = nowMs() + CATCH_UP_TIMEOUT_MS;
    if (exited && sample.appliedLsn >= sample.currentLsn) break;
    if (nowMs() > deadline) throw new Error("the state did not reach the head in time");
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
  const code = (await exit).code;
  if (code !== 0) throw new Error(`the load peer exited ${code}`);
  const output = JSON.parse(await outputText) as PeerOutput;
  // The first sample at the head that the last write's LSN was reached by.
  const head = samples[samples.length - 1]!.currentLsn;
  const caughtUp = samples.find((s) => s.appliedLsn >= head && s.currentLsn >= head)!;
  return { samples, output, caughtUpMs: caughtUp.atMs };
}

interface RunFigures {
  order: KeyOrder;
  ingestRate: number;
  applyRate: number;
  afterLastWriteMs: number;
  lagsMs: number[];
  lagRecords: number[];
  samples: number;
  /** The leanest programs applying the same records into each store (`kv`: ferry's Deno KV). */
  floors: Record<FloorStore, FloorFigures>;
}

/** A floor's apply rate and the seconds of the checkpoint after it (0 for Deno KV). */
interface FloorFigures {
  rate: number;
  checkpointSeconds: number;
}

/** `state_floor.ts` applying the run's records, in a process of its own. */
async function runFloor(dir: string, run: FloorRun): Promise<FloorFigures> {
  const { records: total, order, store } = run;
  const floorDir = joinPath(dir, `floor-${order}-${store}`);
  await Deno.mkdir(floorDir);
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      `--allow-read=${floorDir}`,
      `--allow-write=${floorDir}`,
      new URL("./state_floor.ts", import.meta.url).pathname,
      floorDir,
      String(total),
      order,
      store,
    ],
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error(`the state floor exited ${output.code}`);
  const { records, seconds, checkpointSeconds } = JSON.parse(
    new TextDecoder().decode(output.stdout),
  );
  return { rate: records / seconds, checkpointSeconds };
}

/** One run on a fresh primary: the load with keys in `order`, sampled until caught up. */
async function runOnce(
  dir: string,
  total: number,
  order: KeyOrder,
): Promise<Omit<RunFigures, "floors">> {
  const primary = await startPrimary(joinPath(dir, order), PRIMARY_FLAGS);
  try {
    const peer = spawnPeer(primary.base, total, order);
    const { samples, output, caughtUpMs } = await sampleUntilCaughtUp(primary.base, peer);
    if (output.records !== total) {
      throw new Error(`${output.records} records acknowledged (${output.firstError})`);
    }
    const during = samples.filter((s) => s.atMs >= output.firstSendMs && s.atMs <= caughtUpMs);
    return {
      order,
      ingestRate: total / ((output.lastAckMs - output.firstSendMs) / 1000),
      applyRate: total / ((caughtUpMs - output.firstSendMs) / 1000),
      afterLastWriteMs: Math.max(0, caughtUpMs - output.lastAckMs),
      lagsMs: lagsMs(during),
      lagRecords: during.map((s) => Math.max(0, s.currentLsn - s.appliedLsn)),
      samples: during.length,
    };
  } finally {
    await stop(primary);
  }
}

function row(run: RunFigures): string {
  const f = (ms: number) => formatNumber(ms, 0);
  const met = run.afterLastWriteMs <= 1000 ? "met" : "not met";
  return `| ${run.order} | ${formatNumber(run.ingestRate)} | ${formatNumber(run.applyRate)} | ${
    (run.applyRate / run.ingestRate).toFixed(2)
  } | ${f(percentile(run.lagsMs, 50))} | ${f(percentile(run.lagsMs, 99))} | ${
    f(Math.max(...run.lagsMs))
  } | ${formatNumber(percentile(run.lagRecords, 99))} | ${f(run.afterLastWriteMs)} (${met}) | ${
    formatNumber(run.floors.kv.rate)
  } | ${(run.applyRate / run.floors.kv.rate).toFixed(2)} | ${floorCell(run.floors.sqlite)} | ${
    floorCell(run.floors.memory)
  } |`;
}

/** A floor's rate, then the seconds of its checkpoint. */
function floorCell(floor: FloorFigures): string {
  return `${formatNumber(floor.rate)} (${floor.checkpointSeconds.toFixed(2)} s)`;
}

/** State apply vs batched ingest: 1M distinct keys, rising and scattered; then 1M updates. */
export async function runStateBench(): Promise<void> {
  const quick = quickMode();
  const total = quick ? RECORDS_QUICK : RECORDS_FULL;
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-state-" });
  const runs: RunFigures[] = [];
  try {
    for (const order of KEY_ORDERS) {
      const measured = await runOnce(dir, total, order);
      const floors = {} as Record<FloorStore, FloorFigures>;
      for (const store of FLOOR_STORES) {
        floors[store] = await runFloor(dir, { records: total, order, store });
      }
      const run = { ...measured, floors };
      runs.push(run);
      console.log(
        `${order} keys: ingest ${formatNumber(run.ingestRate)} records/s, apply ${
          formatNumber(run.applyRate)
        } records/s (ratio ${(run.applyRate / run.ingestRate).toFixed(2)}); lag p99 ${
          formatNumber(percentile(run.lagsMs, 99))
        } ms (${formatNumber(percentile(run.lagRecords, 99))} records); head reached ${
          formatNumber(run.afterLastWriteMs)
        } ms after the last write (target ≤ 1000 ms); Deno KV floor ${
          formatNumber(run.floors.kv.rate)
        } records/s (apply / floor ${
          (run.applyRate / run.floors.kv.rate).toFixed(2)
        }); records/s (checkpoint) of the SQLite floor ${
          floorCell(run.floors.sqlite)
        }, of the in-memory floor ${floorCell(run.floors.memory)}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await appendResults(`State: materialised state vs batched ingest${quick ? " (quick)" : ""}`, [
    `${formatNumber(total)} records (with as many distinct keys but for rewrites), ` +
    `${RECORDS_PER_REQUEST} per ` +
    `request from ${CLIENTS} concurrent clients in a separate process, commit policy \`local\`, ` +
    "to a real primary (start task permissions, no pruning), once per key order: sequential " +
    "(new keys past the existing ones, like time-ordered ids), scattered (a multiplicative " +
    `hash of the index), and rewrites (the same ${formatNumber(REWRITTEN_KEYS)} scattered keys ` +
    `written again and again: updates). \`/v1/status\` sampled every ${SAMPLE_MS} ms (${
      runs.map((r) => r.samples).join(" and ")
    } samples): the lag of a sample is how long before it the head was at its \`applied_lsn\` ` +
    "(0 at the head). Apply rate = records / (first write → `applied_lsn` at the head). " +
    "Deno KV floor: `bench/state_floor.ts`, the leanest program applying the same records into " +
    "a Deno KV file of its own (one `set` of the value's JSON text per record, 999 records and " +
    "the applied LSN per atomic commit: Deno KV takes at most 1000 mutations per commit), alone " +
    "on the machine after the primary's run. What other stores would give, from the same " +
    "program: SQLite through Deno's built-in `node:sqlite` (WAL, `synchronous=NORMAL`, " +
    "100 000 upserts and the applied LSN per transaction, then one checkpoint), and the state " +
    "in memory (one `Map` entry per key, then a checkpoint file of every entry, fdatasynced: " +
    "the Redis model, the spool replaying what came after it). Their rates count the apply; " +
    "the checkpoint, which the state needs only before a prune, is timed apart (in brackets). " +
    "A store whose floor is below the ingest rate cannot keep up with these writes.",
    "",
    "| keys | ingest records/s | apply records/s | apply / ingest | lag p50 ms | lag p99 ms | lag max ms | lag p99 records | head reached after the last write, ms (target ≤ 1000) | Deno KV floor records/s | apply / floor | SQLite floor records/s (checkpoint) | in-memory floor records/s (checkpoint) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...runs.map(row),
  ]);
}

/** Self time per source file, most first (which part of ferry the CPU went to). */
function fileTimes(profile: Profile): Array<[string, number]> {
  const totals = new Map<string, number>();
  for (const [name, time] of selfTimes(profile)) {
    const file = name.split(" ")[1]?.replace(/:\d+$/, "") || name.split(" ")[0]!;
    totals.set(file, (totals.get(file) ?? 0) + time);
  }
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}

/**
 * The same run with the primary's main thread under the V8 profiler (inspector), from the first
 * write until the state reached the head; prints the top functions and files by self time and
 * writes bench/profiles/state.cpuprofile. Run: deno run -A bench/state_bench.ts --profile [--quick]
 */
async function profileState(): Promise<void> {
  const quick = quickMode();
  const total = quick ? RECORDS_QUICK : RECORDS_FULL;
  const dir = await Deno.makeTempDir({ prefix: "ferry-profile-state-" });
  const port = freePort();
  const inspectPort = freePort();
  const args = [...startTaskArgs(joinPath(dir, "data"), port), ...PRIMARY_FLAGS];
  args.splice(1, 0, `--inspect=127.0.0.1:${inspectPort}`);
  const primary = startProcess(args);
  let closeInspector = () => {};
  try {
    await primary.waitFor("ferry.started");
    const inspector = await connect(inspectPort);
    closeInspector = inspector.close;
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: 200 });
    await inspector.send("Profiler.start");
    const base = `http://127.0.0.1:${port}`;
    const order = (stringOption("keys") ?? "sequential") as KeyOrder;
    const peer = spawnPeer(base, total, order);
    const { output, caughtUpMs } = await sampleUntilCaughtUp(base, peer);
    const { profile } = (await inspector.send("Profiler.stop")) as { profile: Profile };
    console.log(
      `ingest ${((output.lastAckMs - output.firstSendMs) / 1000).toFixed(2)} s, state at the ` +
        `head ${((caughtUpMs - output.firstSendMs) / 1000).toFixed(2)} s after the first write`,
    );
    await Deno.mkdir(new URL("./profiles/", import.meta.url), { recursive: true });
    await Deno.writeTextFile(
      new URL("./profiles/state.cpuprofile", import.meta.url),
      JSON.stringify(profile),
    );
    const show = (rows: Array<[string, number]>, count: number) => {
      const sum = rows.reduce((acc, [, t]) => acc + t, 0);
      for (const [name, time] of rows.slice(0, count)) {
        console.log(`${((100 * time) / sum).toFixed(1).padStart(5)}%  ${name}`);
      }
    };
    show(selfTimes(profile), 40);
    console.log("-- by file");
    show(fileTimes(profile), 25);
  } finally {
    closeInspector();
    primary.child.kill("SIGTERM");
    await primary.child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--peer");
  if (Deno.args.includes("--profile")) await profileState();
  else if (at >= 0) {
    const [base, clients, total, order] = Deno.args.slice(at + 1);
    const options = { clients: Number(clients), total: Number(total), order: order as KeyOrder };
    console.log(JSON.stringify(await runPeer(base!, options)));
  } else {
    await runStateBench();
  }
}
