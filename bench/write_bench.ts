/**
 * Write benchmarks against a real primary process (the start task's own scoped flags, a temp data
 * dir, a free port), loaded by bench/load_client.ts in a separate Deno process:
 *
 * - `writes`: durable single-record writes/s (commit policy `local`, 128-character value) at 1, 16
 *   and 64 concurrent clients, with p50/p99 latency, against Redis 7 with `appendfsync always`
 *   measured by `redis-benchmark` in the same run on the same disk.
 * - `batch`: 1000 records per request from a few concurrent clients: records/s, MB/s of values, of
 *   request bodies and of bytes appended to the spool (`wal_retained_bytes` before/after), against
 *   the disk's own sequential write bandwidth (`dd ... oflag=direct conv=fdatasync`) of the same
 *   run on the same file system.
 *
 * MB is 10^6 bytes throughout (dd's unit). Quick mode (`--quick` or FERRY_BENCH_QUICK=1) runs each
 * measurement for ~1.5 s, for validating the script, not for figures.
 *
 * Run: deno task bench writes [--quick]; deno task bench batch [--quick]
 */

import { getJson, type Node, startPrimary, stop } from "../tests/helpers/cluster.ts";
import { freePort, ROOT, waitUntil } from "../tests/helpers/process.ts";
import type { LoadResult } from "./load_client.ts";
import { ensureWrk, runWrk } from "./wrk.ts";
import { appendResults, formatNumber } from "./results.ts";

const VALUE_BYTES = 128;
const KEY_SPACE = 100_000;
const WRITE_CONCURRENCIES = [1, 16, 64];
const BATCH_RECORDS = 1000;
const BATCH_CLIENTS = [1, 4];
const RUN_MS = 8000;
const QUICK_RUN_MS = 1500;
const WARMUP_MS = 1000;
const QUICK_WARMUP_MS = 300;
/** redis-benchmark runs a fixed request count: a pilot run measures the rate to size the real one. */
const REDIS_PILOT_REQUESTS_PER_CLIENT = 100;
const REDIS_PILOT_REQUESTS_MIN = 2000;
const REDIS_REQUESTS_MAX = 10_000_000;
/** dd writes this many MiB with O_DIRECT and one fdatasync at the end. */
const DD_MIB = 512;
const QUICK_DD_MIB = 64;
/** A child (load client, redis-benchmark, dd) is killed when it runs this much past its budget. */
const CHILD_SLACK_MS = 60_000;
const REDIS_START_TIMEOUT_MS = 10_000;
/** Keeps the retention timer from pruning mid-run, so `wal_retained_bytes` only grows. */
const PRIMARY_FLAGS = ["--retention-interval-ms", "3600000"];
const LOAD_CLIENT = new URL("./load_client.ts", import.meta.url).pathname;
const MB = 1e6;

function quickMode(): boolean {
  return Deno.args.includes("--quick") || Deno.env.get("FERRY_BENCH_QUICK") === "1";
}

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (killed after `timeoutMs`) and returns its exit code and output. */
async function run(command: string, args: string[], timeoutMs: number): Promise<Output> {
  const child = new Deno.Command(command, {
    args,
    cwd: ROOT,
    env: { LC_ALL: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
  } finally {
    clearTimeout(timer);
  }
}

async function runOk(command: string, args: string[], timeoutMs: number): Promise<Output> {
  const out = await run(command, args, timeoutMs);
  if (out.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${out.code}:\n${out.stderr}${out.stdout}`);
  }
  return out;
}

// ---- ferry ----

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

/** Runs bench/load_client.ts in its own Deno process (net access to the primary only). */
async function load(
  primary: Node,
  options: { concurrency: number; records: number; warmupMs: number; durationMs: number },
): Promise<LoadResult> {
  const args = [
    "run",
    "--no-prompt",
    `--allow-net=127.0.0.1:${primary.port}`,
    LOAD_CLIENT,
    ...["--url", primary.base, "--concurrency", String(options.concurrency)],
    ...["--records", String(options.records), "--value-chars", String(VALUE_BYTES)],
    ...["--warmup-ms", String(options.warmupMs), "--duration-ms", String(options.durationMs)],
  ];
  const budget = options.warmupMs + options.durationMs + CHILD_SLACK_MS;
  const out = await runOk(Deno.execPath(), args, budget);
  const result = JSON.parse(out.stdout.trim().split("\n").pop()!) as LoadResult;
  if (result.errors > 0 || result.requests === 0) {
    throw new Error(`load client: ${result.errors} failed requests, first: ${result.first_error}`);
  }
  return result;
}

async function retainedBytes(primary: Node): Promise<number> {
  return (await getJson(primary.base, "/v1/status")).wal_retained_bytes as number;
}

// ---- redis ----

/** Installs redis-server (and redis-tools) from Debian when missing; returns its version. */
async function ensureRedis(): Promise<string> {
  const version = async () => {
    try {
      const out = await run("redis-server", ["--version"], CHILD_SLACK_MS);
      await run("redis-benchmark", ["--version"], CHILD_SLACK_MS);
      return out.stdout.match(/v=(\S+)/)?.[1];
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  };
  const found = await version();
  if (found) return found;
  // `env` passes DEBIAN_FRONTEND through sudo, which would drop it from the environment.
  const prefix = [...(Deno.uid() === 0 ? [] : ["sudo"]), "env", "DEBIAN_FRONTEND=noninteractive"];
  const apt = async (...args: string[]) => {
    const argv = [...prefix, "apt-get", ...args];
    console.log(argv.join(" "));
    const child = new Deno.Command(argv[0]!, { args: argv.slice(1), stdin: "null" }).spawn();
    return (await child.status).success;
  };
  const install = ["install", "-y", "--no-install-recommends", "redis-server"];
  if (!(await apt(...install))) {
    if (!(await apt("update")) || !(await apt(...install))) {
      throw new Error("could not install redis-server with apt-get");
    }
  }
  const installed = await version();
  if (!installed) throw new Error("redis-server was installed but does not run");
  return installed;
}

interface Redis {
  port: number;
  child: Deno.ChildProcess;
  log: string[];
}

async function redisCli(redis: Redis, ...command: string[]): Promise<string> {
  const args = ["-h", "127.0.0.1", "-p", String(redis.port), ...command];
  return (await runOk("redis-cli", args, CHILD_SLACK_MS)).stdout;
}

/** `CONFIG GET name` → value. */
async function redisConfig(redis: Redis, name: string): Promise<string> {
  const lines = (await redisCli(redis, "CONFIG", "GET", name)).split("\n");
  return lines[1]?.trim() ?? "";
}

/** `INFO persistence` field → number. */
async function redisInfo(redis: Redis, field: string): Promise<number> {
  const info = await redisCli(redis, "INFO", "persistence");
  const value = info.match(new RegExp(`^${field}:(\\S+)`, "m"))?.[1];
  if (value === undefined) throw new Error(`redis INFO persistence has no ${field}:\n${info}`);
  return Number(value);
}

/**
 * Starts redis-server on 127.0.0.1 and a free port with an fsync-always AOF in `dir` (no RDB
 * snapshots, no AOF rewrite during the run: ferry compacts nothing either), checks that the
 * running server really has those settings, runs `body`, stops it.
 */
async function withRedis<T>(dir: string, body: (redis: Redis) => Promise<T>): Promise<T> {
  await Deno.mkdir(dir, { recursive: true });
  const port = freePort();
  const child = new Deno.Command("redis-server", {
    args: [
      ...["--bind", "127.0.0.1", "--port", String(port), "--dir", dir, "--daemonize", "no"],
      ...["--appendonly", "yes", "--appendfsync", "always", "--save", ""],
      ...["--auto-aof-rewrite-percentage", "0", "--logfile", ""],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) log.push(chunk);
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const redis = { port, child, log };
  let exited = false;
  const status = child.status.finally(() => {
    exited = true;
  });
  try {
    await waitUntil("redis-server to answer PING", async () => {
      if (exited) throw new Error(`redis-server exited:\n${log.join("")}`);
      const out = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), "PING"], 5000);
      return out.stdout.trim() === "PONG";
    }, REDIS_START_TIMEOUT_MS);
    const expected = { appendonly: "yes", appendfsync: "always", save: "", bind: "127.0.0.1" };
    for (const [name, value] of Object.entries(expected)) {
      const actual = await redisConfig(redis, name);
      if (actual !== value) throw new Error(`redis ${name} is "${actual}", expected "${value}"`);
    }
    if (await redisInfo(redis, "aof_enabled") !== 1) throw new Error("redis AOF is not enabled");
    const result = await body(redis);
    child.kill("SIGTERM");
    if (!(await status).success) throw new Error(`redis-server exited badly:\n${log.join("")}`);
    return result;
  } finally {
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch {
        // it ended meanwhile
      }
    }
    await status;
    await drained;
  }
}

interface RedisRun {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  aofBytesPerOp: number;
}

/** Parses redis-benchmark 7's `--csv` output: a header row, then one row per test. */
function parseRedisCsv(csv: string): { rps: number; p50: number; p99: number } {
  const rows = csv.trim().split("\n").map((line) =>
    line.trim().split(",").map((cell) => cell.replace(/^"|"$/g, ""))
  );
  const header = rows.find((row) => row[0] === "test");
  const set = rows.find((row) => row[0] === "SET");
  if (!header || !set) throw new Error(`unexpected redis-benchmark output:\n${csv}`);
  const column = (name: string) => {
    const value = Number(set[header.indexOf(name)]);
    if (!Number.isFinite(value)) throw new Error(`no ${name} in redis-benchmark output:\n${csv}`);
    return value;
  };
  return { rps: column("rps"), p50: column("p50_latency_ms"), p99: column("p99_latency_ms") };
}

async function redisBenchmark(redis: Redis, clients: number, requests: number): Promise<RedisRun> {
  const aofBefore = await redisInfo(redis, "aof_current_size");
  const args = [
    ...["-h", "127.0.0.1", "-p", String(redis.port), "-t", "set", "-d", String(VALUE_BYTES)],
    ...["-c", String(clients), "-n", String(requests), "-r", String(KEY_SPACE), "-P", "1"],
    "--csv",
  ];
  const out = await runOk("redis-benchmark", args, 10 * 60_000);
  const aofAfter = await redisInfo(redis, "aof_current_size");
  return {
    requests,
    ...parseRedisCsv(out.stdout),
    aofBytesPerOp: (aofAfter - aofBefore) / requests,
  };
}

/** A pilot run sizes `-n` so that the measured run lasts about `runMs`. */
async function measureRedis(redis: Redis, clients: number, runMs: number): Promise<RedisRun> {
  const pilotRequests = Math.max(
    REDIS_PILOT_REQUESTS_MIN,
    REDIS_PILOT_REQUESTS_PER_CLIENT * clients,
  );
  const pilot = await redisBenchmark(redis, clients, pilotRequests);
  const requests = Math.round(pilot.rps * runMs / 1000);
  return await redisBenchmark(
    redis,
    clients,
    Math.min(REDIS_REQUESTS_MAX, Math.max(pilotRequests, requests)),
  );
}

// ---- disk ----

/** Sequential write bandwidth of the disk under `dir`, in MB/s, as dd reports it. */
async function diskWriteBandwidth(dir: string, mib: number): Promise<number> {
  const file = `${dir}/dd.tmp`;
  try {
    const out = await runOk("dd", [
      "if=/dev/zero",
      `of=${file}`,
      "bs=1M",
      `count=${mib}`,
      "oflag=direct",
      "conv=fdatasync",
    ], CHILD_SLACK_MS * 5);
    // "536870912 bytes (537 MB, 512 MiB) copied, 1.02 s, 526 MB/s"
    const match = out.stderr.match(/^(\d+) bytes .* copied, ([\d.e+-]+) s,/m);
    if (!match) throw new Error(`unexpected dd output:\n${out.stderr}`);
    return Number(match[1]) / Number(match[2]) / MB;
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

// ---- the benchmarks ----

function ms(value: number): string {
  return value.toFixed(2);
}

export async function runWritesBench(): Promise<void> {
  const quick = quickMode();
  const runMs = quick ? QUICK_RUN_MS : RUN_MS;
  const warmupMs = quick ? QUICK_WARMUP_MS : WARMUP_MS;
  const redisVersion = await ensureRedis();
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-", dir: ROOT });
  try {
    // wrk (C) when it can be installed, as redis-benchmark (C) is for Redis; else the Deno client.
    const useWrk = await ensureWrk();
    const generator = useWrk
      ? "`wrk` (C, Debian's package) with a Lua script, 2 threads, one keep-alive connection per client; a warm-up run is discarded; latency from wrk's own distribution"
      : "`bench/load_client.ts` in a separate Deno process, one `fetch` loop per client over keep-alive connections (wrk could not be installed)";
    const ferry = await withPrimary(`${dir}/data`, async (primary) => {
      const results: LoadResult[] = [];
      for (const concurrency of WRITE_CONCURRENCIES) {
        const wrkOptions = {
          connections: concurrency,
          records: 1,
          valueChars: VALUE_BYTES,
          keySpace: KEY_SPACE,
        };
        if (useWrk) await runWrk(primary.base, { ...wrkOptions, durationMs: warmupMs });
        const result = useWrk
          ? await runWrk(primary.base, { ...wrkOptions, durationMs: runMs })
          : await load(primary, { concurrency, records: 1, warmupMs, durationMs: runMs });
        if (result.errors > 0) throw new Error(`ferry load: ${result.errors} failed requests`);
        console.log(
          `ferry, ${concurrency} clients: ${
            formatNumber(result.requests / (result.duration_ms / 1000))
          } writes/s, p50 ${ms(result.p50_ms)} ms, p99 ${ms(result.p99_ms)} ms`,
        );
        results.push(result);
      }
      return results;
    });
    const redis = await withRedis(`${dir}/redis`, async (redis) => {
      const results: RedisRun[] = [];
      for (const clients of WRITE_CONCURRENCIES) {
        const result = await measureRedis(redis, clients, runMs);
        if (result.aofBytesPerOp < VALUE_BYTES) {
          throw new Error(`redis AOF grew ${result.aofBytesPerOp} bytes per SET: not persisting?`);
        }
        console.log(
          `redis, ${clients} clients: ${formatNumber(result.rps)} ops/s, p50 ${
            ms(result.p50)
          } ms, p99 ${ms(result.p99)} ms`,
        );
        results.push(result);
      }
      return results;
    });
    const lines = [
      `Durable single-record writes, ${VALUE_BYTES}-byte values, keys drawn from ${
        formatNumber(KEY_SPACE)
      }; ${runMs / 1000} s per measurement${quick ? " (QUICK MODE: validation only)" : ""}.`,
      "",
      "- ferry: a real primary (the start task's flags), `POST /v1/records` with one record, " +
      "commit policy `local` (answered after the group commit's fdatasync). Load generator: " +
      `${generator}.`,
      `- redis: redis-server ${redisVersion}, \`--appendonly yes --appendfsync always --save ""\` ` +
      "(AOF rewrite off), bound to 127.0.0.1; measured with `redis-benchmark -t set -d " +
      `${VALUE_BYTES} -c N -n <pilot-sized> -r ${KEY_SPACE} -P 1 --csv\` (C, RESP; its own ` +
      "p50/p99). The AOF grew " +
      redis.map((r) => formatNumber(r.aofBytesPerOp)).join(" / ") + " bytes per SET.",
      "- Both load generators share the machine's cores with the server they measure; ferry speaks " +
      "HTTP/1.1 + JSON, redis RESP.",
      "",
      "| clients | ferry writes/s | ferry p50 ms | ferry p99 ms | redis ops/s | redis p50 ms | redis p99 ms | ferry/redis writes/s |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ];
    WRITE_CONCURRENCIES.forEach((clients, i) => {
      const f = ferry[i]!;
      const r = redis[i]!;
      const rate = f.requests / (f.duration_ms / 1000);
      const ratio = rate / r.rps;
      console.log(`${clients} clients: ferry/redis = ${ratio.toFixed(2)}`);
      lines.push(
        `| ${clients} | ${formatNumber(rate)} | ${ms(f.p50_ms)} | ${ms(f.p99_ms)} | ${
          formatNumber(r.rps)
        } | ${ms(r.p50)} | ${ms(r.p99)} | ${ratio.toFixed(2)} |`,
      );
    });
    await appendResults("Writes: durable single-record writes, ferry vs Redis AOF always", lines);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export async function runBatchBench(): Promise<void> {
  const quick = quickMode();
  const runMs = quick ? QUICK_RUN_MS : RUN_MS;
  const warmupMs = quick ? QUICK_WARMUP_MS : WARMUP_MS;
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-", dir: ROOT });
  try {
    const ddMib = quick ? QUICK_DD_MIB : DD_MIB;
    const disk = await diskWriteBandwidth(dir, ddMib);
    console.log(`disk (dd ${ddMib} MiB, O_DIRECT, fdatasync): ${disk.toFixed(1)} MB/s`);
    const lines = [
      `Batched writes: ${BATCH_RECORDS} records of ${VALUE_BYTES}-byte values per request, commit ` +
      `policy \`local\`, ${runMs / 1000} s per measurement${
        quick ? " (QUICK MODE: validation only)" : ""
      }. Load generator: \`bench/load_client.ts\` in a separate Deno process (${warmupMs} ms ` +
      "warm-up not counted). MB = 10^6 bytes.",
      "",
      `Disk: \`dd if=/dev/zero bs=1M count=${ddMib} oflag=direct conv=fdatasync\` on the data ` +
      `dir's file system: **${disk.toFixed(1)} MB/s**. Spool bytes are the growth of ` +
      "`wal_retained_bytes` (frames as stored) per record; the materialised state the primary " +
      "also writes to Deno KV is not counted.",
      "",
      "| clients | records/s | value MB/s | request MB/s | spool MB/s | spool bytes/record | p50 ms | p99 ms | spool MB/s / disk MB/s | value MB/s / disk MB/s |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ];
    await withPrimary(`${dir}/data`, async (primary) => {
      for (const clients of BATCH_CLIENTS) {
        const before = await retainedBytes(primary);
        const result = await load(primary, {
          concurrency: clients,
          records: BATCH_RECORDS,
          warmupMs,
          durationMs: runMs,
        });
        const appended = (await retainedBytes(primary)) - before;
        const bytesPerRecord = appended / (result.records + result.warmup_records);
        if (!(bytesPerRecord > VALUE_BYTES)) {
          throw new Error(`the spool grew ${appended} bytes for ${result.records} records`);
        }
        const seconds = result.duration_ms / 1000;
        const recordsPerS = result.records / seconds;
        const valueMBs = recordsPerS * VALUE_BYTES / MB;
        const requestMBs = result.request_bytes / seconds / MB;
        const spoolMBs = recordsPerS * bytesPerRecord / MB;
        console.log(
          `ferry, ${clients} clients x ${BATCH_RECORDS} records: ${
            formatNumber(recordsPerS)
          } records/s, values ${valueMBs.toFixed(1)} MB/s, spool ${spoolMBs.toFixed(1)} MB/s (${
            (spoolMBs / disk).toFixed(3)
          } of disk), p50 ${ms(result.p50_ms)} ms, p99 ${ms(result.p99_ms)} ms`,
        );
        lines.push(
          `| ${clients} | ${formatNumber(recordsPerS)} | ${valueMBs.toFixed(1)} | ${
            requestMBs.toFixed(1)
          } | ${spoolMBs.toFixed(1)} | ${bytesPerRecord.toFixed(0)} | ${ms(result.p50_ms)} | ${
            ms(result.p99_ms)
          } | ${(spoolMBs / disk).toFixed(3)} | ${(valueMBs / disk).toFixed(3)} |`,
        );
      }
    });
    await appendResults("Batch: 1000-record writes vs the disk's sequential bandwidth", lines);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  await runWritesBench();
  await runBatchBench();
}
