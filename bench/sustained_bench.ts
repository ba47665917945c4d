/**
 * Sustained batches: what the batch benchmark's 8-second runs do not show. A real primary takes
 * 1000-record requests from 4 clients (bench/load_client.ts, JSON) for 90 s, while
 * `/v1/status` is sampled; Redis takes pipelined SETs (`-P 1000 -c 4`, `appendfsync always`) for
 * as long, in the same run. Printed per 10-second window: records ingested and applied per second,
 * the state's lag and backlog at the window's end and how much of the window its apply rested. That
 * shows what the apply's rests buy while the state is within its yield bound (30 s behind), what
 * the writes get once it is past it and applies at their priority, and, once the WAL it has not
 * applied reaches `--state-backlog-bytes-max`, writes going at the pace of the apply.
 *
 * The primary is stopped at the end without waiting for the state to apply its backlog (at Deno
 * KV's pace that would take many minutes); its data directory is removed.
 *
 * Run: `deno task bench sustained [--seconds=90] [--quick]`.
 */

import { numberOption, quickMode } from "./args.ts";
import { getJson, type Node, startPrimary, stop } from "../tests/helpers/cluster.ts";
import { ROOT } from "../tests/helpers/process.ts";
import { GIB_BYTES } from "../src/core/limits.ts";
import { appendResults, formatNumber } from "./results.ts";
import { load } from "./write_bench.ts";
import { ensureRedis, measureRedis, withRedis } from "./write_peers.ts";

const CLIENTS = 4;
const RECORDS_PER_REQUEST = 1000;
const VALUE_BYTES = 128;
const RUN_S_DEFAULT = 90;
const RUN_S_QUICK = 6;
const WARMUP_MS = 1000;
const SAMPLE_MS = 500;
const WINDOW_S = 10;
const WINDOW_S_QUICK = 2;
/** The batch benchmark's measurement: the first this many seconds are compared with the rest. */
const BURST_S = 8;
/** No pruning during the run: the spool only grows. */
const PRIMARY_FLAGS = ["--wal-retain-bytes-min", String(64 * GIB_BYTES)];

/** One `/v1/status` sample. */
interface Sample {
  atMs: number;
  currentLsn: number;
  appliedLsn: number;
  lagMs: number;
  resting: boolean;
}

/** One window of samples, summed up. */
interface Window {
  fromS: number;
  toS: number;
  ingestPerS: number;
  applyPerS: number;
  lagEndMs: number;
  /** Records written but not applied at the window's end. */
  backlogEnd: number;
  restingShare: number;
}

async function sample(primary: Node): Promise<Sample> {
  const status = await getJson(primary.base, "/v1/status");
  const apply = status.state_apply as { lag_ms: number; resting: boolean };
  return {
    atMs: performance.now(),
    currentLsn: status.current_lsn as number,
    appliedLsn: status.applied_lsn as number,
    lagMs: apply.lag_ms,
    resting: apply.resting,
  };
}

/** Samples until `done` settles. */
async function sampleUntil(primary: Node, done: Promise<unknown>): Promise<Sample[]> {
  const samples: Sample[] = [];
  let finished = false;
  done.finally(() => finished = true).catch(() => undefined);
  while (!finished) {
    samples.push(await sample(primary));
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
  samples.push(await sample(primary));
  return samples;
}

/** The samples cut into windows of `windowS` seconds, from the first write on. */
function windowsOf(samples: readonly Sample[], windowS: number): Window[] {
  const first = samples.findIndex((s) => s.currentLsn > 0);
  if (first < 0) throw new Error("no write reached the primary");
  const start = samples[first]!;
  const windows: Window[] = [];
  let from = start;
  let inWindow: Sample[] = [];
  for (const s of samples.slice(first + 1)) {
    inWindow.push(s);
    const isLast = s === samples[samples.length - 1];
    const seconds = (s.atMs - from.atMs) / 1000;
    // The last samples close a window of their own unless too few for one (the load's end).
    if (seconds < windowS && !(isLast && seconds >= windowS / 2)) continue;
    windows.push({
      fromS: (from.atMs - start.atMs) / 1000,
      toS: (s.atMs - start.atMs) / 1000,
      ingestPerS: (s.currentLsn - from.currentLsn) / seconds,
      applyPerS: (s.appliedLsn - from.appliedLsn) / seconds,
      lagEndMs: s.lagMs,
      backlogEnd: s.currentLsn - s.appliedLsn,
      restingShare: inWindow.filter((w) => w.resting).length / inWindow.length,
    });
    from = s;
    inWindow = [];
  }
  return windows;
}

/** Records per second between the first write and `seconds` later (or the last sample). */
function ingestOver(samples: readonly Sample[], seconds: number): number {
  const start = samples.find((s) => s.currentLsn > 0)!;
  const end = samples.find((s) => s.atMs - start.atMs >= seconds * 1000) ??
    samples[samples.length - 1]!;
  return (end.currentLsn - start.currentLsn) / ((end.atMs - start.atMs) / 1000);
}

async function ferryRun(dir: string, runMs: number): Promise<Sample[]> {
  const primary = await startPrimary(`${dir}/data`, PRIMARY_FLAGS);
  try {
    const loaded = load(primary, {
      concurrency: CLIENTS,
      records: RECORDS_PER_REQUEST,
      format: "json",
      warmupMs: WARMUP_MS,
      durationMs: runMs,
    });
    const samples = await sampleUntil(primary, loaded);
    await loaded;
    return samples;
  } finally {
    await stop(primary, "SIGKILL");
  }
}

function windowRow(w: Window): string {
  return `| ${w.fromS.toFixed(0)}-${w.toS.toFixed(0)} | ${formatNumber(w.ingestPerS)} | ${
    formatNumber(w.applyPerS)
  } | ${(w.lagEndMs / 1000).toFixed(1)} | ${formatNumber(w.backlogEnd)} | ${
    w.restingShare.toFixed(2)
  } |`;
}

export async function runSustainedBench(): Promise<void> {
  const quick = quickMode();
  const runS = quick ? RUN_S_QUICK : numberOption("seconds", RUN_S_DEFAULT);
  const windowS = quick ? WINDOW_S_QUICK : WINDOW_S;
  await ensureRedis();
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-", dir: ROOT });
  try {
    const samples = await ferryRun(dir, runS * 1000);
    const windows = windowsOf(samples, windowS);
    const redis = await withRedis(`${dir}/redis`, (redis) =>
      measureRedis(
        redis,
        { clients: CLIENTS, pipeline: RECORDS_PER_REQUEST, valueBytes: VALUE_BYTES },
        runS * 1000,
      ));
    const whole = ingestOver(samples, Infinity);
    const burst = ingestOver(samples, BURST_S);
    const last = samples[samples.length - 1]!;
    const summary = [
      `- ferry over the whole run: ${formatNumber(whole)} records/s, ${
        (whole / redis.rps).toFixed(2)
      } of Redis (${formatNumber(redis.rps)} SETs/s over as long); over its first ${BURST_S} s ` +
      `${formatNumber(burst)} records/s, ${(burst / redis.rps).toFixed(2)} of Redis.`,
      `- At the end the state was ${(last.lagMs / 1000).toFixed(1)} s behind, ${
        formatNumber(last.currentLsn - last.appliedLsn)
      } records (applied ${formatNumber(last.appliedLsn)} of ${formatNumber(last.currentLsn)}).`,
    ];
    for (const line of summary) console.log(line);
    const lines = [
      `Sustained batches: ${RECORDS_PER_REQUEST} records of ${VALUE_BYTES}-byte values per ` +
      `request (JSON, commit policy \`local\`) from ${CLIENTS} clients (\`bench/load_client.ts\`, ` +
      `${WARMUP_MS} ms warm-up) for ${runS} s${quick ? " (QUICK MODE: validation only)" : ""}; ` +
      `\`/v1/status\` sampled every ${SAMPLE_MS} ms. Redis: \`redis-benchmark -t set -d ` +
      `${VALUE_BYTES} -P ${RECORDS_PER_REQUEST} -c ${CLIENTS}\` against \`appendfsync always\` for ` +
      "as long. Windows from the first write; lag: age of the oldest record the state had not " +
      "applied; rested: share of the samples that found the apply resting.",
      "",
      "| seconds | ingested records/s | applied records/s | state lag at the end, s | records not applied at the end | rested |",
      "|---|---:|---:|---:|---:|---:|",
      ...windows.map(windowRow),
      "",
      ...summary,
    ];
    await appendResults("Sustained batches: ingest and the state's apply", lines);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await runSustainedBench();
