/**
 * Event stream benchmark (SPEC.md 13.5): a subscriber that stops reading `GET /v1/events` is
 * dropped and never slows writes. Against a real primary (the start task's flags), durable
 * single-record writes from bench/load_client.ts (a separate process, 16 clients) are measured
 * three times in one run: alone; beside an event storm (a replica's `rebootstrapping` flag flipped
 * as fast as a loop can, each flip an event); and beside the same storm with stalled subscribers
 * (event streams opened and never read). The ratio of the last two says what the stalled
 * subscribers cost the writers; the metrics say they were dropped.
 *
 * Run: deno task bench events [--quick]
 */

import { quickMode } from "./args.ts";
import { startPrimary, stop } from "../tests/helpers/cluster.ts";
import { ROOT } from "../tests/helpers/process.ts";
import type { LoadResult } from "./load_client.ts";
import { appendResults, formatNumber } from "./results.ts";

const CONCURRENCY = 16;
const STALLED_SUBSCRIBERS = 8;
const STORM_LOOPS = 2;
/** Events the storm publishes per second (each one a flip of a replica's flag). */
const STORM_EVENTS_PER_S = 2000;
const RUN_MS = 6000;
const QUICK_RUN_MS = 1500;
const WARMUP_MS = 1000;
const CHILD_SLACK_MS = 60_000;
/** How long the storm may go on for the stalled subscribers to be dropped. */
const DROP_WAIT_MS = 120_000;
const DROP_POLL_MS = 250;
const LOAD_CLIENT = new URL("./load_client.ts", import.meta.url).pathname;

/** Writes for `durationMs` from a load client process; resolves with what it measured. */
async function writes(base: string, port: number, durationMs: number): Promise<LoadResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      `--allow-net=127.0.0.1:${port}`,
      LOAD_CLIENT,
      ...["--url", base, "--concurrency", String(CONCURRENCY)],
      ...["--warmup-ms", String(WARMUP_MS), "--duration-ms", String(durationMs)],
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), WARMUP_MS + durationMs + CHILD_SLACK_MS);
  const out = await child.output();
  clearTimeout(timer);
  const result = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
  if (result.errors > 0) throw new Error(`load client: ${result.first_error}`);
  return result as LoadResult;
}

/** Flips replica `storm`'s rebootstrapping flag in loops until `signal` aborts; counts flips. */
async function storm(base: string, signal: AbortSignal): Promise<number> {
  await (await fetch(`${base}/v1/replicas/storm`, { method: "PUT", body: "{}", headers: json }))
    .body
    ?.cancel();
  let flips = 0;
  const intervalMs = STORM_LOOPS * 1000 / STORM_EVENTS_PER_S;
  const loop = async () => {
    let next = performance.now();
    for (let on = true; !signal.aborted; on = !on) {
      // Paced: the same event rate beside every measurement, so the storm's own requests cost
      // the writers the same whether subscribers are stalled or not.
      next += intervalMs;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const response = await fetch(`${base}/v1/replicas/storm/rebootstrapping`, {
        method: "PUT",
        headers: json,
        body: JSON.stringify({ rebootstrapping: on }),
      });
      await response.body?.cancel();
      flips += 1;
    }
  };
  await Promise.all(Array.from({ length: STORM_LOOPS }, loop));
  return flips;
}
const json = { "content-type": "application/json" };

/**
 * A subscriber that asks for the event stream over a raw connection and never reads: the
 * kernel's buffers fill, then the primary's own, then the hub drops it. (A fetch client would
 * read the body into its own buffers behind the test's back.)
 */
async function stalledSubscriber(port: number): Promise<Deno.TcpConn> {
  const connection = await Deno.connect({ hostname: "127.0.0.1", port });
  const request = `GET /v1/events HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`;
  await connection.write(new TextEncoder().encode(request));
  return connection;
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
}

function perS(result: LoadResult): number {
  return result.requests / (result.duration_ms / 1000);
}

/** The three measurements, from one primary. */
async function measure(base: string, port: number, durationMs: number) {
  const alone = await writes(base, port, durationMs);
  let control = new AbortController();
  let flipping = storm(base, control.signal);
  const withStorm = await writes(base, port, durationMs);
  control.abort();
  const stormFlips = await flipping;
  const stalled = [];
  for (let i = 0; i < STALLED_SUBSCRIBERS; i++) stalled.push(await stalledSubscriber(port));
  control = new AbortController();
  const stormStarted = performance.now();
  flipping = storm(base, control.signal);
  const withStalled = await writes(base, port, durationMs);
  // The storm goes on until the hub has dropped them all (the kernel's buffers fill first).
  const deadline = stormStarted + DROP_WAIT_MS;
  while (
    await metric(base, "ferry_event_subscribers_dropped_total") < STALLED_SUBSCRIBERS &&
    performance.now() < deadline
  ) {
    await new Promise((resolve) => setTimeout(resolve, DROP_POLL_MS));
  }
  const dropAfterMs = performance.now() - stormStarted;
  control.abort();
  const stalledFlips = await flipping;
  const dropped = await metric(base, "ferry_event_subscribers_dropped_total");
  const open = await metric(base, "ferry_event_subscribers");
  for (const connection of stalled) connection.close();
  return { alone, withStorm, withStalled, stormFlips, stalledFlips, dropped, open, dropAfterMs };
}

/** Runs the benchmark and appends its section to bench/RESULTS.md. */
export async function runEventsBench(): Promise<void> {
  const durationMs = quickMode() ? QUICK_RUN_MS : RUN_MS;
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-events-" });
  try {
    const primary = await startPrimary(`${dir}/p`);
    let m;
    try {
      m = await measure(primary.base, primary.port, durationMs);
    } finally {
      await stop(primary);
    }
    const seconds = durationMs / 1000;
    const ratio = perS(m.withStalled) / perS(m.withStorm);
    const lines = [
      `Durable single-record writes (commit policy \`local\`, ${CONCURRENCY} clients in a separate process, ${seconds} s each) to one primary, three times: alone; beside an event storm (${STORM_LOOPS} loops flipping a replica's \`rebootstrapping\` flag, paced at ${STORM_EVENTS_PER_S} flips/s, each flip one event); beside the same storm with ${STALLED_SUBSCRIBERS} subscribers that opened \`GET /v1/events\` and read nothing.`,
      "",
      "| writes | writes/s | p99 ms | events published/s |",
      "|---|---:|---:|---:|",
      `| alone | ${formatNumber(perS(m.alone))} | ${m.alone.p99_ms.toFixed(2)} | 0 |`,
      `| beside the storm | ${formatNumber(perS(m.withStorm))} | ${
        m.withStorm.p99_ms.toFixed(2)
      } | ${formatNumber(m.stormFlips / seconds)} |`,
      `| beside the storm and ${STALLED_SUBSCRIBERS} stalled subscribers | ${
        formatNumber(perS(m.withStalled))
      } | ${m.withStalled.p99_ms.toFixed(2)} | ${
        formatNumber(m.stalledFlips * 1000 / m.dropAfterMs)
      } |`,
      "",
      `Stalled subscribers / storm alone: **${ratio.toFixed(2)}** (writes/s), measured in the ` +
      `first ${seconds} s with every stalled subscriber attached. The storm then went on until ` +
      `the hub dropped them: ${m.dropped} of ${STALLED_SUBSCRIBERS} dropped for falling behind ` +
      `after ${(m.dropAfterMs / 1000).toFixed(1)} s of storm (the kernel's socket buffers, a few ` +
      `MB each, fill first); ${m.open} event stream(s) open afterwards.`,
    ];
    for (const line of lines) console.log(line);
    await appendResults(
      `Events: stalled subscribers do not slow writes${quickMode() ? " (quick)" : ""}`,
      lines,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await runEventsBench();
