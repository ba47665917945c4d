/**
 * Load generator for the write benchmarks, run as its own Deno process so that it does not share
 * an event loop with the primary it measures.
 *
 * N concurrent loops each POST /v1/records (commit policy `local`) with `--records` records whose
 * value is a string of `--value-chars` characters, one request at a time per loop, over Deno's
 * pooled keep-alive connections. `--format json` (default) sends `{"records": [...]}`;
 * `--format ndjson` sends one record per line (`application/x-ndjson`, the policy in the query).
 * Loops run `--warmup-ms` unmeasured, then `--duration-ms` measured; a loop starts no request
 * after the deadline and finishes the one in flight.
 *
 * Prints one JSON line: `{requests, records, warmup_requests, warmup_records, request_bytes,
 * duration_ms, p50_ms, p99_ms, errors, first_error}`; latencies are per request (send to body read).
 *
 * Run: deno run --allow-net=127.0.0.1:PORT bench/load_client.ts --url http://127.0.0.1:PORT \
 *   --concurrency 16 --duration-ms 5000 [--warmup-ms 1000] [--records 1] [--value-chars 128] \
 *   [--format json|ndjson]
 */

import { percentile } from "./results.ts";

/** Keys are drawn from this many, like `redis-benchmark -r 100000`. */
const KEY_SPACE = 100_000;
const COLLECTION = "bench";

/** What one run measured (printed as JSON). */
export interface LoadResult {
  requests: number;
  records: number;
  warmup_requests: number;
  warmup_records: number;
  request_bytes: number;
  duration_ms: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  first_error: string | null;
}

/** Options of one load run. */
export interface LoadOptions {
  url: string;
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  recordsPerRequest: number;
  valueChars: number;
  /** How the records travel (default `json`). */
  format?: "json" | "ndjson";
}

function _record(value: string): { op: string; collection: string; key: string; value: string } {
  const key = `key:${String(Math.floor(Math.random() * KEY_SPACE)).padStart(12, "0")}`;
  return { op: "put", collection: COLLECTION, key, value };
}

/** One request's body: a JSON object with the records, or one record per line. */
function requestBody(recordsPerRequest: number, value: string, format: "json" | "ndjson"): string {
  if (format === "ndjson") {
    let text = "";
    for (let i = 0; i < recordsPerRequest; i++) text += JSON.stringify(_record(value)) + "\n";
    return text;
  }
  const records = Array.from({ length: recordsPerRequest }, () => _record(value));
  return JSON.stringify({ records, commit_policy: "local" });
}

/** Runs the loops and returns what they measured. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const format = options.format ?? "json";
  const endpoint = format === "ndjson"
    ? `${options.url}/v1/records?commit_policy=local`
    : `${options.url}/v1/records`;
  const contentType = format === "ndjson" ? "application/x-ndjson" : "application/json";
  const value = "x".repeat(options.valueChars);
  const encoder = new TextEncoder();
  const latencies: number[] = [];
  let warmupRequests = 0;
  let requestBytes = 0;
  let errors = 0;
  let firstError: string | null = null;
  const started = performance.now();
  const measureFrom = started + options.warmupMs;
  const deadline = measureFrom + options.durationMs;
  let lastDone = measureFrom;

  const loop = async () => {
    while (performance.now() < deadline) {
      const body = encoder.encode(requestBody(options.recordsPerRequest, value, format));
      const sent = performance.now();
      try {
        const response = await fetch(endpoint, {
          method: "POST",
          headers: { "content-type": contentType },
          body,
        });
        const text = await response.text();
        if (response.status !== 200) throw new Error(`${response.status} ${text.slice(0, 200)}`);
      } catch (error) {
        errors += 1;
        firstError ??= String(error);
        if (errors > 100) return; // the server is failing; stop hammering it
        continue;
      }
      const done = performance.now();
      if (sent < measureFrom) {
        warmupRequests += 1;
      } else {
        latencies.push(done - sent);
        requestBytes += body.byteLength;
        lastDone = Math.max(lastDone, done);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  return {
    requests: latencies.length,
    records: latencies.length * options.recordsPerRequest,
    warmup_requests: warmupRequests,
    warmup_records: warmupRequests * options.recordsPerRequest,
    request_bytes: requestBytes,
    duration_ms: lastDone - measureFrom,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    errors,
    first_error: firstError,
  };
}

/** `--name value` pairs of the command line. */
function flags(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!;
    const value = argv[i + 1];
    if (!name.startsWith("--") || value === undefined) throw new Error(`bad argument "${name}"`);
    out.set(name.slice(2), value);
  }
  return out;
}

function _format(text: string | undefined): "json" | "ndjson" {
  if (text === undefined || text === "json" || text === "ndjson") return text ?? "json";
  throw new Error("--format must be json or ndjson");
}

if (import.meta.main) {
  const args = flags(Deno.args);
  const number = (name: string, fallback?: number): number => {
    const raw = args.get(name);
    const value = raw === undefined ? fallback : Number(raw);
    if (value === undefined || !Number.isInteger(value) || value < 0) {
      throw new Error(`--${name} must be a non-negative integer`);
    }
    return value;
  };
  const url = args.get("url");
  if (!url) throw new Error("--url is required");
  const result = await runLoad({
    url,
    concurrency: number("concurrency"),
    durationMs: number("duration-ms"),
    warmupMs: number("warmup-ms", 0),
    recordsPerRequest: number("records", 1),
    valueChars: number("value-chars", 128),
    format: _format(args.get("format")),
  });
  console.log(JSON.stringify(result));
}
