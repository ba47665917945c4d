/**
 * CPU profile of a real primary under a load, through the V8 inspector (this Deno has no
 * --cpu-prof): starts the primary with the start task's flags plus --inspect, runs a load from a
 * separate process, and prints the functions with the most self time. The raw profile is written
 * to bench/profiles/<scenario>.cpuprofile (open it in Chrome DevTools).
 *
 * Run: deno run -A bench/profile.ts writes|batch|wrk-writes|wrk-batch|wrk-pull [seconds]
 * (`FERRY_PROFILE_CONNECTIONS=N` sets the connections of wrk-writes, 64 by default).
 */

import { freePort, startProcess, startTaskArgs } from "../tests/helpers/process.ts";
import { wrkArgs, wrkScript } from "./wrk.ts";

const SAMPLING_INTERVAL_US = 200;
const TOP_FUNCTIONS = 30;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** A V8 CPU profile as `Profiler.stop` returns it. */
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A minimal Chrome DevTools Protocol session over the inspector's WebSocket. */
export async function connect(
  inspectPort: number,
): Promise<{ send: (method: string, params?: unknown) => Promise<unknown>; close: () => void }> {
  let targets: Array<{ webSocketDebuggerUrl: string }> = [];
  for (let i = 0; i < 100 && targets.length === 0; i++) {
    targets = await fetch(`http://127.0.0.1:${inspectPort}/json/list`).then((r) => r.json()).catch(
      () => [],
    );
    if (targets.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve) => socket.addEventListener("open", resolve, { once: true }));
  const pending = new Map<number, (value: unknown) => void>();
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    pending.get(message.id)?.(message.result);
  });
  let next = 0;
  const send = (method: string, params?: unknown) =>
    new Promise<unknown>((resolve) => {
      const id = ++next;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  // Deno keeps a process alive while a debugger is attached: close before stopping the primary.
  return { send, close: () => socket.close() };
}

/** Self time per function (name and source line), most first. */
export function selfTimes(profile: Profile): Array<[string, number]> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame;
    const where = frame.url
      ? `${frame.url.replace(/^.*\/(work\/main|registry\.npmjs\.org)\//, "")}:${
        frame.lineNumber + 1
      }`
      : "";
    const name = `${frame.functionName || "(anonymous)"} ${where}`;
    totals.set(name, (totals.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}

const LOADS: Record<string, (base: string, seconds: number) => string[]> = {
  writes: (
    base,
    s,
  ) => ["--url", base, "--concurrency", "64", "--records", "1", "--duration-ms", String(s * 1000)],
  batch: (
    base,
    s,
  ) => [
    "--url",
    base,
    "--concurrency",
    "4",
    "--records",
    "1000",
    "--duration-ms",
    String(s * 1000),
  ],
};

/** wrk (C, from Debian's wrk package) as the load: it takes far less CPU than a Deno client. */
function wrkLoadArgs(base: string, scenario: string, seconds: number, dir: string): string[] {
  const durationMs = seconds * 1000;
  if (scenario === "wrk-pull") {
    const url = `${base}/v1/wal?since_lsn=90&max_count=10&replica_id=r1`;
    return wrkArgs(url, {
      connections: 32,
      durationMs,
      headers: ["accept: application/x-ferry-frames"],
    });
  }
  const batch = scenario === "wrk-batch";
  const script = `${dir}/post.lua`;
  Deno.writeTextFileSync(script, wrkScript(batch ? 1000 : 1, 128, 100_000));
  return wrkArgs(base, {
    connections: batch ? 4 : Number(Deno.env.get("FERRY_PROFILE_CONNECTIONS") ?? 64),
    durationMs,
    script,
  });
}

async function main(): Promise<void> {
  const scenario = Deno.args[0] ?? "writes";
  const seconds = Number(Deno.args[1] ?? "5");
  const load = LOADS[scenario] ?? LOADS.writes!;
  if (!LOADS[scenario] && !scenario.startsWith("wrk-")) {
    throw new Error(
      `scenario must be one of ${Object.keys(LOADS).join(", ")}, wrk-writes, wrk-batch`,
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "ferry-profile-", dir: "." });
  const port = freePort();
  const inspectPort = freePort();
  const args = startTaskArgs(`${dir}/data`, port);
  args.splice(1, 0, `--inspect=127.0.0.1:${inspectPort}`);
  const primary = startProcess(args);
  let closeInspector = () => {};
  try {
    await primary.waitFor("ferry.started");
    const inspector = await connect(inspectPort);
    closeInspector = inspector.close;
    const send = inspector.send;
    if (scenario === "wrk-pull") {
      const records = Array.from(
        { length: 100 },
        (_, i) => ({ op: "put", collection: "c", key: `k${i}`, value: i }),
      );
      const body = JSON.stringify({ records });
      const headers = { "content-type": "application/json" };
      await (await fetch(`http://127.0.0.1:${port}/v1/records`, { method: "POST", headers, body }))
        .arrayBuffer();
    }
    await send("Profiler.enable");
    await send("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
    await send("Profiler.start");
    const base = `http://127.0.0.1:${port}`;
    const client = scenario.startsWith("wrk-")
      ? new Deno.Command("wrk", {
        args: wrkLoadArgs(base, scenario, seconds, dir),
        stdout: "piped",
      })
      : new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("./load_client.ts", import.meta.url).pathname,
          ...load(base, seconds),
        ],
        stdout: "piped",
      });
    console.log(new TextDecoder().decode((await client.output()).stdout).trim());
    const { profile } = (await send("Profiler.stop")) as { profile: Profile };
    await Deno.mkdir(new URL("./profiles/", import.meta.url), { recursive: true });
    await Deno.writeTextFile(
      new URL(`./profiles/${scenario}.cpuprofile`, import.meta.url),
      JSON.stringify(profile),
    );
    const times = selfTimes(profile);
    const total = times.reduce((sum, [, t]) => sum + t, 0);
    for (const [name, time] of times.slice(0, TOP_FUNCTIONS)) {
      console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`);
    }
  } finally {
    closeInspector();
    primary.child.kill("SIGTERM");
    await primary.child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
