/**
 * Sealed segments as cacheable objects (SPEC.md 13.2): 1000 replicas catch up a 100 MB spool
 * through nginx (Debian's package, the tests' config: `tests/helpers/nginx.ts`) and then straight
 * from the primary, side by side: bytes the primary served, wall time, and the CPU seconds of the
 * primary, nginx and the clients (the machine's cores are shared by all of them).
 *
 * The replicas are lightweight catch-up clients (`bench/segments_peer.ts`, several processes), each
 * listing on the primary and downloading every sealed segment with `SegmentClient`, the runtime's
 * own code, which checks every download whole (length, SHA-256, every CRC). They do not register:
 * a primary keeps at most 256 slots (`REPLICAS_MAX`), and nothing is pruned during the run.
 *
 * Run: deno task bench segments [--quick] [--replicas=N] [--spool-mb=M] [--peers=P]
 */

import { numberOption, quickMode } from "./args.ts";
import { getJson, type Node, startPrimary, stop } from "../tests/helpers/cluster.ts";
import { findNginx, type RunningNginx, startNginx } from "../tests/helpers/nginx.ts";
import { ROOT } from "../tests/helpers/process.ts";
import { appendResults, formatNumber } from "./results.ts";

const PEER = new URL("./segments_peer.ts", import.meta.url).pathname;
const SEGMENT_BYTES = "4MiB";
const VALUE_CHARS = 1000;
const BATCH_RECORDS = 200;
const WRITERS = 4;
const MB = 1_000_000;

interface _Settings {
  replicas: number;
  spoolMb: number;
  peers: number;
}

interface _PeerResult {
  clients: number;
  segments: number;
  bytes: number;
  failures: number;
  first_failure?: string;
  start_ms: number;
  end_ms: number;
  cpu_s: number;
}

interface _Run {
  mode: string;
  wallS: number;
  delivered: number;
  segments: number;
  originBytes: number;
  originRequests: number;
  primaryCpuS: number;
  nginxCpuS: number;
  clientsCpuS: number;
}

function _settings(): _Settings {
  const quick = quickMode();
  return {
    replicas: numberOption("replicas", quick ? 100 : 1000),
    spoolMb: numberOption("spool-mb", quick ? 20 : 100),
    peers: numberOption("peers", 4),
  };
}

/** CPU seconds (utime + stime) of `pid` and its children still running (nginx's workers). */
function _cpuSeconds(pid: number): number {
  let total = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch {
      continue;
    }
    const fields = stat.split(") ")[1]!.split(" ");
    if (Number(entry.name) !== pid && Number(fields[1]) !== pid) continue;
    total += (Number(fields[11]) + Number(fields[12])) / 100;
  }
  return total;
}

/** Fills the spool with `spoolMb` MB of records (1 KB values), 4 writers of 200-record batches. */
async function _fill(base: string, spoolMb: number): Promise<void> {
  const value = "v".repeat(VALUE_CHARS);
  let written = 0;
  const target = spoolMb * MB;
  await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    while ((await getJson(base, "/v1/status")).wal_retained_bytes as number < target) {
      const records = Array.from({ length: BATCH_RECORDS }, (_, i) => ({
        op: "put",
        collection: "bench",
        key: `w${w}-${written + i}`,
        value,
      }));
      written += BATCH_RECORDS;
      const response = await fetch(`${base}/v1/records`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ records }),
      });
      if (!response.ok) throw new Error(`write: ${response.status} ${await response.text()}`);
      await response.body?.cancel();
    }
  }));
}

async function _metrics(base: string): Promise<{ bytes: number; requests: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const read = (series: string) =>
    Number(text.split("\n").find((l) => l.startsWith(`${series} `))?.split(" ")[1] ?? 0);
  return {
    bytes: read("ferry_segment_bytes_total"),
    requests: read('ferry_segment_requests_total{status="200"}'),
  };
}

/** One catch-up of every replica, through `segmentsUrl`; what the origin served meanwhile. */
async function _run(
  mode: string,
  primary: Node,
  segmentsUrl: string,
  parts: { settings: _Settings; nginx: RunningNginx },
): Promise<_Run> {
  const { settings, nginx } = parts;
  const before = await _metrics(primary.base);
  const cpuBefore = [_cpuSeconds(primary.process.child.pid), _cpuSeconds(nginx.pid)];
  const per = Math.ceil(settings.replicas / settings.peers);
  const outputs = await Promise.all(Array.from({ length: settings.peers }, (_, i) => {
    const clients = Math.min(per, settings.replicas - i * per);
    return new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-prompt", PEER, "--primary", primary.base, "--segments", segmentsUrl]
        .concat(["--clients", String(clients)]),
      cwd: ROOT,
      stdout: "piped",
      stderr: "inherit",
    }).output();
  }));
  const peers = outputs.map((out) =>
    JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!) as _PeerResult
  );
  const failed = peers.find((peer) => peer.failures > 0);
  if (failed) {
    throw new Error(`${mode}: ${failed.failures} clients failed: ${failed.first_failure}`);
  }
  const after = await _metrics(primary.base);
  return {
    mode,
    wallS: (Math.max(...peers.map((p) => p.end_ms)) - Math.min(...peers.map((p) => p.start_ms))) /
      1000,
    delivered: peers.reduce((sum, p) => sum + p.bytes, 0),
    segments: peers.reduce((sum, p) => sum + p.segments, 0),
    originBytes: after.bytes - before.bytes,
    originRequests: after.requests - before.requests,
    primaryCpuS: _cpuSeconds(primary.process.child.pid) - cpuBefore[0]!,
    nginxCpuS: _cpuSeconds(nginx.pid) - cpuBefore[1]!,
    clientsCpuS: peers.reduce((sum, p) => sum + p.cpu_s, 0),
  };
}

function _row(run: _Run, replicas: number): string {
  return `| ${run.mode} | ${formatNumber(replicas)} | ${formatNumber(run.segments)} | ${
    formatNumber(run.delivered / MB / 1000, 1)
  } | ${formatNumber(run.originBytes / MB, 1)} | ${formatNumber(run.originRequests)} | ${
    formatNumber(run.wallS, 1)
  } | ${formatNumber(run.delivered / MB / run.wallS)} | ${formatNumber(run.primaryCpuS, 1)} | ${
    formatNumber(run.nginxCpuS, 1)
  } | ${formatNumber(run.clientsCpuS, 1)} |`;
}

/** The benchmark: fill, then catch up through nginx, then straight from the primary. */
export async function runSegmentsBench(): Promise<void> {
  const settings = _settings();
  const found = await findNginx();
  if ("skip" in found) {
    console.log(`segments bench skipped: ${found.skip}`);
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-segments-" });
  const primary = await startPrimary(`${dir}/primary`, ["--segment-bytes-max", SEGMENT_BYTES]);
  let nginx: RunningNginx | undefined;
  try {
    await _fill(primary.base, settings.spoolMb);
    const listing = await getJson(primary.base, "/v1/segments");
    const sealed = listing.segments as Array<{ bytes: number }>;
    const sealedBytes = sealed.reduce((sum, s) => sum + s.bytes, 0);
    nginx = await startNginx(found.path, { upstream: `127.0.0.1:${primary.port}`, workers: 2 });
    const runs = [
      await _run("through nginx", primary, nginx.base, { settings, nginx }),
      await _run("straight to the primary", primary, primary.base, { settings, nginx }),
    ];
    for (const run of runs) console.log(JSON.stringify(run));
    await appendResults("Segments: catch-up through nginx vs straight to the primary", [
      `${formatNumber(settings.replicas)} catch-up clients in ${settings.peers} processes ` +
      "(`bench/segments_peer.ts`: `SegmentClient`, every download checked whole: length, " +
      "SHA-256, every CRC; nothing applied to a store), all at once, each listing on the primary " +
      `and fetching every sealed segment in order. Spool: ${
        formatNumber(sealedBytes / MB, 1)
      } MB in ${sealed.length} sealed segments (\`--segment-bytes-max ${SEGMENT_BYTES}\`, 1 KB ` +
      "values). nginx 1.22 (Debian), 2 workers, the config of `tests/helpers/nginx.ts` " +
      "(`proxy_cache` on disk, `proxy_cache_lock`). GB and MB = 10^9 and 10^6 bytes; CPU s = " +
      "user + system of each side over the run.",
      "",
      "| path | replicas | segments fetched | GB delivered | origin segment MB | origin requests | wall s | client MB/s | primary CPU s | nginx CPU s | clients CPU s |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      ...runs.map((run) => _row(run, settings.replicas)),
      "",
      `- Origin bytes, nginx / direct: ${
        formatNumber(runs[0]!.originBytes / Math.max(1, runs[1]!.originBytes), 4)
      } (each segment left the primary ${
        formatNumber(runs[0]!.originRequests / Math.max(1, sealed.length), 2)
      } time(s) through nginx).`,
      `- Wall time, nginx / direct: ${formatNumber(runs[0]!.wallS / runs[1]!.wallS, 2)}.`,
    ]);
  } finally {
    await nginx?.stop();
    await stop(primary).catch(() => stop(primary, "SIGKILL"));
    await Deno.remove(dir, { recursive: true });
  }
}
