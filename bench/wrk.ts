/**
 * wrk (Debian's `wrk` package, a C load generator) for HTTP benchmarks: light enough that the
 * load generator does not take the core the server under test needs, as redis-benchmark is for
 * Redis. Installed by `ensureWrk()` when missing.
 */

import type { LoadResult } from "./load_client.ts";

/** Ensures wrk is installed (apt-get, with sudo when not root); returns false when it cannot be. */
export async function ensureWrk(): Promise<boolean> {
  const has = async () =>
    (await new Deno.Command("sh", { args: ["-c", "command -v wrk"], stdout: "null" }).output())
      .success;
  if (await has()) return true;
  const sudo = Deno.uid() === 0 ? "" : "sudo ";
  const install = `${sudo}apt-get install -y --no-install-recommends wrk || ` +
    `(${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends wrk)`;
  await new Deno.Command("sh", {
    args: ["-c", install],
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "null",
    stderr: "null",
  }).output();
  return await has();
}

/** A wrk script POSTing `records` puts of `valueChars`-character values per request. */
export function wrkScript(records: number, valueChars: number, keySpace: number): string {
  return `
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  local parts = {}
  for i = 1, ${records} do
    counter = counter + 1
    parts[i] = '{"op":"put","collection":"bench","key":"k' .. (counter % ${keySpace}) .. '","value":"' .. string.rep("x", ${valueChars}) .. '"}'
  end
  return wrk.format(nil, "/v1/records", nil, '{"records":[' .. table.concat(parts, ",") .. ']}')
end
`;
}

function _durationMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!match) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as "us" | "ms" | "s" | "m"];
  return Number(match[1]) * scale;
}

/**
 * wrk's command line: up to 2 threads, `connections` keep-alive connections, `durationMs` rounded to
 * whole seconds (at least one), its latency distribution, and a Lua `script` or extra `headers`.
 */
export function wrkArgs(
  url: string,
  options: { connections: number; durationMs: number; script?: string; headers?: string[] },
): string[] {
  const seconds = Math.max(1, Math.round(options.durationMs / 1000));
  const args = ["-t", String(Math.min(2, options.connections)), "-c", String(options.connections)];
  args.push("-d", `${seconds}s`, "--latency");
  for (const header of options.headers ?? []) args.push("-H", header);
  if (options.script !== undefined) args.push("-s", options.script);
  return [...args, url];
}

/** Runs wrk against `base` and returns what it measured, in load_client's shape. */
export async function runWrk(
  base: string,
  options: {
    connections: number;
    durationMs: number;
    records: number;
    valueChars: number;
    keySpace: number;
  },
): Promise<LoadResult> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-wrk-" });
  try {
    const script = `${dir}/post.lua`;
    await Deno.writeTextFile(
      script,
      wrkScript(options.records, options.valueChars, options.keySpace),
    );
    const args = wrkArgs(base, {
      connections: options.connections,
      durationMs: options.durationMs,
      script,
    });
    const output = await new Deno.Command("wrk", { args, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(output.stdout);
    const completed = /(\d+) requests in ([\d.]+\w+)/.exec(text);
    const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0) +
      Number(
        /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)?.slice(1)
          .reduce((a, b) => a + Number(b), 0) ?? 0,
      );
    if (!output.success || !completed) {
      throw new Error(`wrk failed: ${text}\n${new TextDecoder().decode(output.stderr)}`);
    }
    const requests = Number(completed[1]);
    return {
      requests,
      records: requests * options.records,
      warmup_requests: 0,
      warmup_records: 0,
      request_bytes: 0,
      duration_ms: _durationMs(completed[2]!),
      p50_ms: _durationMs(/ 50%\s+(\S+)/.exec(text)?.[1] ?? ""),
      p99_ms: _durationMs(/ 99%\s+(\S+)/.exec(text)?.[1] ?? ""),
      errors,
      first_error: errors > 0 ? "non-2xx responses or socket errors" : null,
    } as LoadResult;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
