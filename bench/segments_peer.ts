/**
 * One process of lightweight catch-up clients for `bench/segments_bench.ts`: each client lists the
 * sealed segments on the primary and downloads every one through `--segments-url` with
 * `SegmentClient`, the replica runtime's own code, which checks each download whole (length,
 * SHA-256, every CRC, LSN range) before it could be applied; nothing is applied to a store (the
 * bench measures what serving segments costs, not Deno KV). Clients run concurrently.
 *
 * Prints one JSON line: clients, segments and bytes fetched, failures, start and end (unix ms),
 * and this process's CPU seconds.
 *
 * Run: deno run -A bench/segments_peer.ts --primary URL --segments URL --clients N
 */

import { SegmentClient } from "../src/client/segments.ts";

function arg(name: string): string {
  const at = Deno.args.indexOf(`--${name}`);
  if (at < 0 || Deno.args[at + 1] === undefined) throw new Error(`--${name} is required`);
  return Deno.args[at + 1]!;
}

/** utime + stime of this process from /proc, in seconds. */
function cpuSeconds(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function catchUp(client: SegmentClient): Promise<{ segments: number; bytes: number }> {
  const { segments } = await client.list();
  let bytes = 0;
  for (const ref of segments) {
    const download = await client.download(ref);
    if (download.corrupt) throw new Error(`${ref.url}: ${download.corrupt.reason}`);
    bytes += ref.bytes;
  }
  return { segments: segments.length, bytes };
}

const clients = Number(arg("clients"));
const client = new SegmentClient({ primaryUrl: arg("primary"), segmentsUrl: arg("segments") });
const cpuStart = cpuSeconds();
const startMs = Date.now();
const results = await Promise.allSettled(Array.from({ length: clients }, () => catchUp(client)));
const endMs = Date.now();
const done = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
const failed = results.flatMap((r) => r.status === "rejected" ? [String(r.reason)] : []);
console.log(JSON.stringify({
  clients,
  segments: done.reduce((sum, r) => sum + r.segments, 0),
  bytes: done.reduce((sum, r) => sum + r.bytes, 0),
  failures: failed.length,
  first_failure: failed[0],
  start_ms: startMs,
  end_ms: endMs,
  cpu_s: cpuSeconds() - cpuStart,
}));
