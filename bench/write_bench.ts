/**
 * Write benchmarks against a real primary process (the start task's own scoped flags, a temp data
 * dir, a free port). Every ferry figure stands beside the same job done, in the same run and on
 * the same disk, by its floor (`bench/write_floor.ts`: the leanest Deno program that does it,
 * durable before it answers) and by Redis 7 with `appendfsync always`:
 *
 * - `writes`: durable single-record writes/s (commit policy `local`, 128-character value) at 1, 16
 *   and 64 concurrent clients, with p50/p99 latency; load from wrk for ferry and the floor,
 *   `redis-benchmark` for Redis.
 * - `batch`: 1000 records per request from 1 and 4 clients (bench/load_client.ts), as JSON and as
 *   NDJSON, for ferry and the floor; Redis pipelined SETs (`redis-benchmark -P 1000 -c N`); and
 *   the disk's own sequential write bandwidth (`dd ... oflag=direct conv=fdatasync`).
 *
 * The primary's materialised state (Deno KV) applies records off the write path; a run can end
 * with a backlog. Before the next measurement starts the benchmark waits for the state to catch
 * up, and reports the backlog and how long it took: that work is part of ferry's cost.
 *
 * MB is 10^6 bytes throughout (dd's unit). Quick mode (`--quick` or FERRY_BENCH_QUICK=1) runs each
 * measurement for ~1.5 s, for validating the script, not for figures.
 *
 * Run: deno task bench writes [--quick]; deno task bench batch [--quick]
 */

import { quickMode } from "./args.ts";
import { getJson, type Node, startPrimary, stop, waitApplied } from "../tests/helpers/cluster.ts";
import { ROOT } from "../tests/helpers/process.ts";
import type { LoadResult } from "./load_client.ts";
import { ensureWrk, runWrk } from "./wrk.ts";
import { appendResults, formatNumber } from "./results.ts";
import {
  CHILD_SLACK_MS,
  diskWriteBandwidth,
  ensureRedis,
  measureRedis,
  type RedisRun,
  runOk,
  withFloor,
  withRedis,
} from "./write_peers.ts";

const VALUE_BYTES = 128;
const KEY_SPACE = 100_000;
const WRITE_CONCURRENCIES = [1, 16, 64];
const BATCH_RECORDS = 1000;
const BATCH_CLIENTS = [1, 4];
const BATCH_FORMATS = ["json", "ndjson"] as const;
const RUN_MS = 8000;
const QUICK_RUN_MS = 1500;
const WARMUP_MS = 1000;
const QUICK_WARMUP_MS = 300;
/** dd writes this many MiB with O_DIRECT and one fdatasync at the end. */
const DD_MIB = 512;
const QUICK_DD_MIB = 64;
/** How long the state may take to apply a run's backlog before the next measurement. */
const SETTLE_TIMEOUT_MS = 300_000;
/** Keeps the retention timer from pruning mid-run, so `wal_retained_bytes` only grows. */
const PRIMARY_FLAGS = ["--retention-interval-ms", "3600000"];
const LOAD_CLIENT = new URL("./load_client.ts", import.meta.url).pathname;
const MB = 1e6;

/** The acceptance targets of the write side (ratios of one run). */
const TARGETS = {
  floor64: 0.85,
  redis64: 1.0,
  floor1: 0.9,
  redisBatch4: 1.5,
};

interface Timing {
  runMs: number;
  warmupMs: number;
  quick: boolean;
}

function timing(): Timing {
  const quick = quickMode();
  return {
    quick,
    runMs: quick ? QUICK_RUN_MS : RUN_MS,
    warmupMs: quick ? QUICK_WARMUP_MS : WARMUP_MS,
  };
}

function ms(value: number): string {
  return value.toFixed(2);
}

function ratio(value: number): string {
  return value.toFixed(2);
}

function perSecond(result: LoadResult, of: "requests" | "records"): number {
  return result[of] / (result.duration_ms / 1000);
}

// ---- ferry and the floor ----

/** Starts a primary in `dataDir`, runs `body`, stops it (SIGTERM, exit 0; SIGKILL on error). */
async function withPrimary<T>(dataDir: string, body: (primary: Node) => Promise<T>): Promise<T> {
  const primary = await startPrimary(dataDir, PRIMARY_FLAGS);
  let result: T;
  try {
    result = await body(primary);
  } catch (error) {
    await stop(primary, "SIGKILL");
    throw error;
  }
  await stop(primary);
  return result;
}

/** Runs bench/load_client.ts in its own Deno process (net access to `port` only). */
export async function load(
  target: { base: string; port: number },
  options: {
    concurrency: number;
    records: number;
    format: "json" | "ndjson";
    warmupMs: number;
    durationMs: number;
  },
): Promise<LoadResult> {
  const args = [
    "run",
    "--no-prompt",
    `--allow-net=127.0.0.1:${target.port}`,
    LOAD_CLIENT,
    ...["--url", target.base, "--concurrency", String(options.concurrency)],
    ...["--records", String(options.records), "--value-chars", String(VALUE_BYTES)],
    ...["--warmup-ms", String(options.warmupMs), "--duration-ms", String(options.durationMs)],
    ...["--format", options.format],
  ];
  const budget = options.warmupMs + options.durationMs + CHILD_SLACK_MS;
  const out = await runOk(Deno.execPath(), args, budget);
  const result = JSON.parse(out.stdout.trim().split("\n").pop()!) as LoadResult;
  if (result.errors > 0 || result.requests === 0) {
    throw new Error(`load client: ${result.errors} failed requests, first: ${result.first_error}`);
  }
  return result;
}

/** Single-record writes at `concurrency`: wrk (a warm-up run, then the measured one), else Deno. */
async function singleWrites(
  target: { base: string; port: number },
  concurrency: number,
  options: Timing & { useWrk: boolean },
): Promise<LoadResult> {
  const wrk = {
    connections: concurrency,
    records: 1,
    valueChars: VALUE_BYTES,
    keySpace: KEY_SPACE,
  };
  if (!options.useWrk) {
    return await load(target, {
      concurrency,
      records: 1,
      format: "json",
      warmupMs: options.warmupMs,
      durationMs: options.runMs,
    });
  }
  await runWrk(target.base, { ...wrk, durationMs: options.warmupMs });
  const result = await runWrk(target.base, { ...wrk, durationMs: options.runMs });
  if (result.errors > 0) throw new Error(`wrk: ${result.errors} failed requests`);
  return result;
}

/** The state's backlog when a measurement ended, and how long it took to apply it. */
interface Settled {
  backlogRecords: number;
  catchUpMs: number;
}

/** Waits until the primary's state has applied every record (the next run starts clean). */
async function settle(primary: Node): Promise<Settled> {
  const status = await getJson(primary.base, "/v1/status");
  const current = status.current_lsn as number;
  const started = performance.now();
  await waitApplied(primary.base, current, SETTLE_TIMEOUT_MS);
  return {
    backlogRecords: current - (status.applied_lsn as number),
    catchUpMs: performance.now() - started,
  };
}

async function retainedBytes(primary: Node): Promise<number> {
  return (await getJson(primary.base, "/v1/status")).wal_retained_bytes as number;
}

function settledText(settled: Settled): string {
  return `state backlog ${formatNumber(settled.backlogRecords)} records, applied in ${
    (settled.catchUpMs / 1000).toFixed(1)
  } s`;
}

// ---- writes ----

interface WritesRun {
  ferry: LoadResult[];
  settled: Settled[];
  floor: LoadResult[];
  redis: RedisRun[];
}

async function measureWrites(dir: string, t: Timing, useWrk: boolean): Promise<WritesRun> {
  const settled: Settled[] = [];
  const ferry = await withPrimary(`${dir}/data`, async (primary) => {
    const results: LoadResult[] = [];
    for (const concurrency of WRITE_CONCURRENCIES) {
      const result = await singleWrites(primary, concurrency, { ...t, useWrk });
      settled.push(await settle(primary));
      console.log(
        `ferry, ${concurrency} clients: ${formatNumber(perSecond(result, "requests"))} writes/s, ` +
          `p50 ${ms(result.p50_ms)} ms, p99 ${ms(result.p99_ms)} ms; ${
            settledText(settled.at(-1)!)
          }`,
      );
      results.push(result);
    }
    return results;
  });
  const floor = await withFloor(`${dir}/floor`, async (target) => {
    const results: LoadResult[] = [];
    for (const concurrency of WRITE_CONCURRENCIES) {
      const result = await singleWrites(target, concurrency, { ...t, useWrk });
      console.log(
        `floor, ${concurrency} clients: ${formatNumber(perSecond(result, "requests"))} writes/s, ` +
          `p50 ${ms(result.p50_ms)} ms, p99 ${ms(result.p99_ms)} ms`,
      );
      results.push(result);
    }
    return results;
  });
  const redis = await withRedis(`${dir}/redis`, async (redis) => {
    const results: RedisRun[] = [];
    for (const clients of WRITE_CONCURRENCIES) {
      const result = await measureRedis(
        redis,
        { clients, pipeline: 1, valueBytes: VALUE_BYTES },
        t.runMs,
      );
      console.log(
        `redis, ${clients} clients: ${formatNumber(result.rps)} ops/s, p50 ${
          ms(result.p50)
        } ms, p99 ${ms(result.p99)} ms`,
      );
      results.push(result);
    }
    return results;
  });
  return { ferry, settled, floor, redis };
}

function writesTable(run: WritesRun): string[] {
  const lines = [
    "| clients | ferry writes/s | ferry p50 ms | ferry p99 ms | floor writes/s | floor p50 ms | floor p99 ms | redis ops/s | redis p50 ms | redis p99 ms | ferry/floor | ferry/redis | floor/redis |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  WRITE_CONCURRENCIES.forEach((clients, i) => {
    const f = run.ferry[i]!;
    const l = run.floor[i]!;
    const r = run.redis[i]!;
    const ferry = perSecond(f, "requests");
    const floor = perSecond(l, "requests");
    lines.push(
      `| ${clients} | ${formatNumber(ferry)} | ${ms(f.p50_ms)} | ${ms(f.p99_ms)} | ${
        formatNumber(floor)
      } | ${ms(l.p50_ms)} | ${ms(l.p99_ms)} | ${formatNumber(r.rps)} | ${ms(r.p50)} | ${
        ms(r.p99)
      } | ${ratio(ferry / floor)} | ${ratio(ferry / r.rps)} | ${ratio(floor / r.rps)} |`,
    );
  });
  return lines;
}

function writesTargets(run: WritesRun): string[] {
  const at = (clients: number) => WRITE_CONCURRENCIES.indexOf(clients);
  const ferry = (clients: number) => perSecond(run.ferry[at(clients)]!, "requests");
  const floor = (clients: number) => perSecond(run.floor[at(clients)]!, "requests");
  const checks: Array<[string, number, number]> = [
    ["64 clients, ferry/floor", ferry(64) / floor(64), TARGETS.floor64],
    ["64 clients, ferry/redis", ferry(64) / run.redis[at(64)]!.rps, TARGETS.redis64],
    ["1 client, ferry/floor", ferry(1) / floor(1), TARGETS.floor1],
  ];
  return checks.map(([what, value, target]) =>
    `- ${what}: ${ratio(value)} (target ≥ ${target}): ${value >= target ? "met" : "NOT met"}`
  );
}

export async function runWritesBench(): Promise<void> {
  const t = timing();
  const redisVersion = await ensureRedis();
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-", dir: ROOT });
  try {
    // wrk (C) when it can be installed, as redis-benchmark (C) is for Redis; else the Deno client.
    const useWrk = await ensureWrk();
    const generator = useWrk
      ? "`wrk` (C, Debian's package) with a Lua script, 2 threads, one keep-alive connection per client; a warm-up run is discarded; latency from wrk's own distribution"
      : "`bench/load_client.ts` in a separate Deno process, one `fetch` loop per client over keep-alive connections (wrk could not be installed)";
    const run = await measureWrites(dir, t, useWrk);
    const targets = writesTargets(run);
    for (const line of targets) console.log(line);
    const lines = [
      `Durable single-record writes, ${VALUE_BYTES}-byte values, keys drawn from ${
        formatNumber(KEY_SPACE)
      }; ${t.runMs / 1000} s per measurement${t.quick ? " (QUICK MODE: validation only)" : ""}.`,
      "",
      "- ferry: a real primary (the start task's flags), `POST /v1/records` with one record, " +
      "commit policy `local` (answered after the group commit's fdatasync). After each " +
      "measurement the benchmark waits for the materialised state to apply the backlog: " +
      run.settled.map(settledText).join("; ") + `. Load generator: ${generator}.`,
      "- floor: `bench/write_floor.ts`, the leanest Deno program doing the same job (`Deno.serve`, " +
      "`await req.json()`, each record a line of one file, one write + one fdatasync per group " +
      "commit, a JSON answer after the fdatasync); same load generator.",
      `- redis: redis-server ${redisVersion}, \`--appendonly yes --appendfsync always --save ""\` ` +
      "(AOF rewrite off), bound to 127.0.0.1; measured with `redis-benchmark -t set -d " +
      `${VALUE_BYTES} -c N -n <pilot-sized> -r ${KEY_SPACE} -P 1 --csv\` (C, RESP; its own ` +
      "p50/p99). The AOF grew " +
      run.redis.map((r) => formatNumber(r.aofBytesPerOp)).join(" / ") + " bytes per SET.",
      "- The load generators share the machine's cores with the server they measure; ferry and " +
      "the floor speak HTTP/1.1 + JSON, redis RESP.",
      "",
      ...writesTable(run),
      "",
      ...targets,
    ];
    await appendResults(
      "Writes: durable single-record writes, ferry vs its floor and Redis",
      lines,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---- batch ----

interface BatchFigures {
  recordsPerS: number;
  result: LoadResult;
  /** Spool bytes per record (ferry only). */
  bytesPerRecord?: number;
  /** The state's backlog when the run ended (ferry only). */
  settled?: Settled;
}

async function ferryBatches(dir: string, t: Timing): Promise<Map<string, BatchFigures>> {
  const figures = new Map<string, BatchFigures>();
  await withPrimary(`${dir}/data`, async (primary) => {
    for (const format of BATCH_FORMATS) {
      for (const clients of BATCH_CLIENTS) {
        const before = await retainedBytes(primary);
        const result = await load(primary, {
          concurrency: clients,
          records: BATCH_RECORDS,
          format,
          warmupMs: t.warmupMs,
          durationMs: t.runMs,
        });
        const appended = (await retainedBytes(primary)) - before;
        const bytesPerRecord = appended / (result.records + result.warmup_records);
        if (!(bytesPerRecord > VALUE_BYTES)) {
          throw new Error(`the spool grew ${appended} bytes for ${result.records} records`);
        }
        const settled = await settle(primary);
        const recordsPerS = perSecond(result, "records");
        console.log(
          `ferry ${format}, ${clients} clients x ${BATCH_RECORDS} records: ${
            formatNumber(recordsPerS)
          } records/s, p50 ${ms(result.p50_ms)} ms, p99 ${ms(result.p99_ms)} ms; ${
            settledText(settled)
          }`,
        );
        figures.set(`${format} ${clients}`, { recordsPerS, result, bytesPerRecord, settled });
      }
    }
  });
  return figures;
}

async function floorBatches(dir: string, t: Timing): Promise<Map<string, BatchFigures>> {
  const figures = new Map<string, BatchFigures>();
  await withFloor(`${dir}/floor`, async (floor) => {
    for (const format of BATCH_FORMATS) {
      for (const clients of BATCH_CLIENTS) {
        const result = await load(floor, {
          concurrency: clients,
          records: BATCH_RECORDS,
          format,
          warmupMs: t.warmupMs,
          durationMs: t.runMs,
        });
        const recordsPerS = perSecond(result, "records");
        console.log(
          `floor ${format}, ${clients} clients x ${BATCH_RECORDS} records: ${
            formatNumber(recordsPerS)
          } records/s, p50 ${ms(result.p50_ms)} ms, p99 ${ms(result.p99_ms)} ms`,
        );
        figures.set(`${format} ${clients}`, { recordsPerS, result });
      }
    }
  });
  return figures;
}

async function redisBatches(dir: string, t: Timing): Promise<RedisRun[]> {
  return await withRedis(`${dir}/redis`, async (redis) => {
    const results: RedisRun[] = [];
    for (const clients of BATCH_CLIENTS) {
      const load = { clients, pipeline: BATCH_RECORDS, valueBytes: VALUE_BYTES };
      const result = await measureRedis(redis, load, t.runMs);
      console.log(
        `redis, ${clients} clients, -P ${BATCH_RECORDS}: ${formatNumber(result.rps)} SETs/s`,
      );
      results.push(result);
    }
    return results;
  });
}

function batchTable(
  ferry: Map<string, BatchFigures>,
  floor: Map<string, BatchFigures>,
  redis: RedisRun[],
  diskMBs: number,
): string[] {
  const lines = [
    "| clients | body | ferry records/s | ferry p50 ms | ferry p99 ms | floor records/s | redis SETs/s (-P 1000) | ferry/floor | ferry/redis | spool MB/s | spool bytes/record | spool MB/s / disk MB/s |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const format of BATCH_FORMATS) {
    BATCH_CLIENTS.forEach((clients, i) => {
      const f = ferry.get(`${format} ${clients}`)!;
      const l = floor.get(`${format} ${clients}`)!;
      const r = redis[i]!;
      const spoolMBs = f.recordsPerS * f.bytesPerRecord! / MB;
      lines.push(
        `| ${clients} | ${format} | ${formatNumber(f.recordsPerS)} | ${ms(f.result.p50_ms)} | ${
          ms(f.result.p99_ms)
        } | ${formatNumber(l.recordsPerS)} | ${formatNumber(r.rps)} | ${
          ratio(f.recordsPerS / l.recordsPerS)
        } | ${ratio(f.recordsPerS / r.rps)} | ${spoolMBs.toFixed(1)} | ${
          f.bytesPerRecord!.toFixed(0)
        } | ${(spoolMBs / diskMBs).toFixed(3)} |`,
      );
    });
  }
  return lines;
}

export async function runBatchBench(): Promise<void> {
  const t = timing();
  await ensureRedis();
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-", dir: ROOT });
  try {
    const ddMib = t.quick ? QUICK_DD_MIB : DD_MIB;
    const disk = await diskWriteBandwidth(dir, ddMib);
    console.log(`disk (dd ${ddMib} MiB, O_DIRECT, fdatasync): ${disk.toFixed(1)} MB/s`);
    const ferry = await ferryBatches(dir, t);
    const floor = await floorBatches(dir, t);
    const redis = await redisBatches(dir, t);
    const at4 = BATCH_CLIENTS.indexOf(4);
    const targets = BATCH_FORMATS.map((format) => {
      const value = ferry.get(`${format} 4`)!.recordsPerS / redis[at4]!.rps;
      const met = value >= TARGETS.redisBatch4 ? "met" : "NOT met";
      return `- 4 clients, ${format}, ferry/redis: ${
        ratio(value)
      } (target ≥ ${TARGETS.redisBatch4}): ${met}`;
    });
    for (const line of targets) console.log(line);
    const lines = [
      `Batched writes: ${BATCH_RECORDS} records of ${VALUE_BYTES}-byte values per request, commit ` +
      `policy \`local\`, ${t.runMs / 1000} s per measurement${
        t.quick ? " (QUICK MODE: validation only)" : ""
      }. Load generator: \`bench/load_client.ts\` in a separate Deno process (${t.warmupMs} ms ` +
      'warm-up not counted), one body per request freshly built, as JSON (`{"records": [...]}`) ' +
      "or as NDJSON (one record per line). MB = 10^6 bytes.",
      "",
      "- ferry: a real primary (the start task's flags). After each measurement the benchmark " +
      "waits for the materialised state to apply the backlog: " +
      [...ferry.entries()].map(([run, f]) => {
        const [format, clients] = run.split(" ");
        return `${format}, ${clients} clients: ${settledText(f.settled!)}`;
      }).join("; ") +
      ".",
      "- floor: `bench/write_floor.ts` (JSON: `await req.json()`, each record stringified as a " +
      "line; NDJSON: each line parsed and appended as it came), one write + one fdatasync per " +
      "group commit, answered after it.",
      "- redis: `redis-benchmark -t set -d 128 -r 100000 -P 1000 -c N` against `appendfsync " +
      "always` (the AOF is fsynced before the replies of each event-loop turn go out).",
      `- Disk: \`dd if=/dev/zero bs=1M count=${ddMib} oflag=direct conv=fdatasync\` on the data ` +
      `dir's file system: **${disk.toFixed(1)} MB/s**. Spool bytes are the growth of ` +
      "`wal_retained_bytes` (frames as stored) per record; the materialised state the primary " +
      "also writes to Deno KV is not counted.",
      "",
      ...batchTable(ferry, floor, redis, disk),
      "",
      ...targets,
    ];
    await appendResults("Batch: 1000-record writes, ferry vs its floor and Redis pipelined", lines);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  await runWritesBench();
  await runBatchBench();
}
