/**
 * The peers of the write benchmarks (bench/write_bench.ts), each measured in the same run as ferry:
 *
 * - the floor (`bench/write_floor.ts`): the leanest Deno program that does the same write job,
 *   started as its own process with access to one file and one port;
 * - Redis 7 with an fsync-always AOF (`appendfsync always`), loaded by `redis-benchmark`, one
 *   request at a time per client or pipelined;
 * - the disk's own sequential write bandwidth (`dd ... oflag=direct conv=fdatasync`).
 *
 * Also the small process helpers they share.
 *
 * @module
 */

import { freePort, ROOT, waitUntil } from "../tests/helpers/process.ts";

/** A child (load client, redis-benchmark, dd) is killed when it runs this much past its budget. */
export const CHILD_SLACK_MS = 60_000;
const REDIS_START_TIMEOUT_MS = 10_000;
const FLOOR_START_TIMEOUT_MS = 30_000;
/** redis-benchmark runs a fixed request count: a pilot run measures the rate to size the real one. */
const REDIS_PILOT_REQUESTS_PER_CLIENT = 100;
const REDIS_PILOT_REQUESTS_MIN = 2000;
/** A pipelined pilot sends this many pipelines per client. */
const REDIS_PILOT_PIPELINES_PER_CLIENT = 20;
const REDIS_REQUESTS_MAX = 100_000_000;
/** Keys are drawn from this many (`-r`), as the ferry loads do. */
const REDIS_KEY_SPACE = 100_000;
const FLOOR = new URL("./write_floor.ts", import.meta.url).pathname;
const MB = 1e6;

/** What a finished child printed. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (killed after `timeoutMs`) and returns its exit code and output. */
export async function run(command: string, args: string[], timeoutMs: number): Promise<Output> {
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

/** `run`, throwing unless the command exits 0. */
export async function runOk(command: string, args: string[], timeoutMs: number): Promise<Output> {
  const out = await run(command, args, timeoutMs);
  if (out.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${out.code}:\n${out.stderr}${out.stdout}`);
  }
  return out;
}

// ---- redis ----

/** Installs redis-server (and redis-tools) from Debian when missing; returns its version. */
export async function ensureRedis(): Promise<string> {
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

/** A running redis-server. */
export interface Redis {
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
export async function withRedis<T>(dir: string, body: (redis: Redis) => Promise<T>): Promise<T> {
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

/** One redis-benchmark run: SETs, their rate and latency, and AOF bytes per SET. */
export interface RedisRun {
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

/** How redis-benchmark loads: concurrent clients, SETs per pipeline, value bytes. */
export interface RedisLoad {
  clients: number;
  pipeline: number;
  valueBytes: number;
}

async function redisBenchmark(redis: Redis, load: RedisLoad, requests: number): Promise<RedisRun> {
  const aofBefore = await redisInfo(redis, "aof_current_size");
  const args = [
    ...["-h", "127.0.0.1", "-p", String(redis.port), "-t", "set", "-d", String(load.valueBytes)],
    ...["-c", String(load.clients), "-n", String(requests), "-r", String(REDIS_KEY_SPACE)],
    ...["-P", String(load.pipeline), "--csv"],
  ];
  const out = await runOk("redis-benchmark", args, 10 * 60_000);
  const aofAfter = await redisInfo(redis, "aof_current_size");
  return {
    requests,
    ...parseRedisCsv(out.stdout),
    aofBytesPerOp: (aofAfter - aofBefore) / requests,
  };
}

/**
 * SETs/s of `load` for about `runMs`: a pilot run sizes `-n`. Throws when the AOF grew less than a
 * value per SET (Redis would not be persisting what it acknowledges).
 */
export async function measureRedis(
  redis: Redis,
  load: RedisLoad,
  runMs: number,
): Promise<RedisRun> {
  const pilotRequests = load.pipeline > 1
    ? load.pipeline * load.clients * REDIS_PILOT_PIPELINES_PER_CLIENT
    : Math.max(REDIS_PILOT_REQUESTS_MIN, REDIS_PILOT_REQUESTS_PER_CLIENT * load.clients);
  const pilot = await redisBenchmark(redis, load, pilotRequests);
  const requests = Math.round(pilot.rps * runMs / 1000);
  const result = await redisBenchmark(
    redis,
    load,
    Math.min(REDIS_REQUESTS_MAX, Math.max(pilotRequests, requests)),
  );
  if (result.aofBytesPerOp < load.valueBytes) {
    throw new Error(`redis AOF grew ${result.aofBytesPerOp} bytes per SET: not persisting?`);
  }
  return result;
}

// ---- the floor ----

/** A running floor process (bench/write_floor.ts, or another `program` of the same flags). */
export interface Floor {
  base: string;
  port: number;
  pid: number;
}

/**
 * Starts the floor (bench/write_floor.ts unless `program` names another floor taking the same
 * flags) on a free port, appending to a file in `dir` (the only file and port it may touch), runs
 * `body`, and stops it.
 */
export async function withFloor<T>(
  dir: string,
  body: (floor: Floor) => Promise<T>,
  program = FLOOR,
): Promise<T> {
  await Deno.mkdir(dir, { recursive: true });
  const port = freePort();
  const file = `${dir}/floor.log`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "--no-prompt", `--allow-net=127.0.0.1:${port}`],
      ...[`--allow-read=${file}`, `--allow-write=${file}`, program],
      ...["--port", String(port), "--file", file],
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const timer = setTimeout(() => child.kill("SIGKILL"), FLOOR_START_TIMEOUT_MS);
    let seen = "";
    while (!seen.includes("listening")) {
      const { done, value } = await reader.read();
      if (done) throw new Error("the floor exited before it listened");
      seen += value;
    }
    clearTimeout(timer);
    await reader.cancel();
    return await body({ base: `http://127.0.0.1:${port}`, port, pid: child.pid });
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // it ended meanwhile
    }
    await child.status;
  }
}

// ---- disk ----

/** Sequential write bandwidth of the disk under `dir`, in MB/s, as dd reports it. */
export async function diskWriteBandwidth(dir: string, mib: number): Promise<number> {
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
