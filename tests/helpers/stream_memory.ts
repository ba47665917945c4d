/**
 * The memory scenario of streaming pulls (SPEC.md 13.1), shared by an end-to-end test (a smaller
 * amount, for CI) and the benchmark (the full ~1 GB): a real primary process, a client that opens
 * a stream and then reads nothing, and a writer that appends `bytes` of records meanwhile. The
 * stream must end at its unsent-bytes cap, and the primary's RSS (VmRSS of /proc/<pid>/status,
 * sampled while writing) must not grow with what was written.
 */

import { MIB_BYTES } from "../../src/core/limits.ts";
import { type Node, startPrimary, stop } from "./cluster.ts";
import { waitUntil } from "./process.ts";

/** What the scenario measured. */
export interface StreamMemoryResult {
  writtenBytes: number;
  seconds: number;
  rssBeforeKib: number;
  rssMaxKib: number;
  /** How the stream that read nothing ended (its `ferry_wal_streams_ended_total` reason). */
  endedBy: Record<string, number>;
  /** The primary's settings that bound its memory here. */
  tailBytesMax: number;
  unsentBytesMax: number;
}

const RECORD_VALUE_BYTES = 900_000;
const RECORDS_PER_WRITE = 4;
const WRITERS = 2;
const RSS_SAMPLE_MS = 100;
const TAIL_BYTES_MAX = 8 * MIB_BYTES;
const UNSENT_BYTES_MAX = 8 * MIB_BYTES;

/** VmRSS of `pid`, in KiB. */
export async function rssKib(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

/** A metric's samples by their `reason` label (or the plain value under ""). */
export async function metricByReason(base: string, name: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out: Record<string, number> = {};
  for (
    const match of text.matchAll(new RegExp(`^${name}(?:\\{reason="([^"]+)"\\})? (\\d+)$`, "gm"))
  ) {
    out[match[1] ?? ""] = Number(match[2]);
  }
  return out;
}

/** Opens a stream on a raw connection and never reads from it; close the connection to end. */
export async function silentStream(port: number, sinceLsn: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const request = `GET /v1/wal?stream=1&since_lsn=${sinceLsn} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
    "Accept: application/x-ferry-frames\r\n\r\n";
  await conn.write(new TextEncoder().encode(request));
  return conn;
}

/**
 * Runs the scenario in `dataDir` with `bytes` written; the primary is stopped after. Without
 * `stalledStream`, the same writes with no stream open: what the rest of the primary costs.
 */
export async function runStreamMemory(
  dataDir: string,
  options: { bytes: number; stalledStream: boolean },
): Promise<StreamMemoryResult> {
  const primary: Node = await startPrimary(dataDir, [
    "--tail-bytes-max",
    String(TAIL_BYTES_MAX),
    "--stream-unsent-bytes-max",
    String(UNSENT_BYTES_MAX),
  ]);
  const pid = primary.process.child.pid;
  let conn: Deno.TcpConn | undefined;
  try {
    if (options.stalledStream) {
      conn = await silentStream(primary.port, 0);
      await waitUntil(
        "the stream to open",
        async () => (await metricByReason(primary.base, "ferry_wal_streams"))[""] === 1,
      );
    }
    const rssBeforeKib = await rssKib(pid);
    let rssMaxKib = rssBeforeKib;
    const sampler = setInterval(() => {
      rssKib(pid).then((kib) => (rssMaxKib = Math.max(rssMaxKib, kib)), () => undefined);
    }, RSS_SAMPLE_MS);
    const started = performance.now();
    let writtenBytes = 0;
    try {
      writtenBytes = await _write(primary.base, options.bytes);
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - started) / 1000;
    rssMaxKib = Math.max(rssMaxKib, await rssKib(pid));
    const endedBy = await metricByReason(primary.base, "ferry_wal_streams_ended_total");
    return {
      writtenBytes,
      seconds,
      rssBeforeKib,
      rssMaxKib,
      endedBy,
      tailBytesMax: TAIL_BYTES_MAX,
      unsentBytesMax: UNSENT_BYTES_MAX,
    };
  } finally {
    conn?.close();
    await stop(primary);
  }
}

/** Writes `bytes` of records (a few large ones per request, `WRITERS` at once); returns the total. */
async function _write(base: string, bytes: number): Promise<number> {
  const value = "x".repeat(RECORD_VALUE_BYTES);
  let written = 0;
  let request = 0;
  const writer = async () => {
    while (written < bytes) {
      const n = request++;
      const records = Array.from({ length: RECORDS_PER_WRITE }, (_, i) => ({
        op: "put",
        collection: "memory",
        key: `k${(n * RECORDS_PER_WRITE + i) % 8}`,
        value,
      }));
      written += RECORDS_PER_WRITE * RECORD_VALUE_BYTES;
      const response = await fetch(`${base}/v1/records`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ records }),
      });
      if (response.status !== 200) {
        throw new Error(`write: ${response.status} ${await response.text()}`);
      }
      await response.body?.cancel();
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  return written;
}
