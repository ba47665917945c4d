/**
 * CPU profiles of a catch-up drain (the "catchup" benchmark's ferry side), both ends at once: a
 * real primary (the start task's flags plus --inspect) serving a backlog of 128-byte records, and
 * the client process draining it with `FerryClient.pullFrames` (started with --inspect-wait, so
 * the profile covers the whole drain). Prints each side's functions with the most self time and
 * writes bench/profiles/catchup-{primary,client}.cpuprofile.
 *
 * Run (under the bench lock): `deno run -A bench/catchup_profile.ts [records] [max_count]`
 */

import { FerryClient } from "../src/client/client.ts";
import { joinPath } from "../src/core/files.ts";
import { GROUP_COMMIT_RECORDS_MAX, MIB_BYTES } from "../src/core/limits.ts";
import { KvState } from "../src/state/kv_state.ts";
import { frameV3ByteLength } from "../src/wal/frame.ts";
import { Spool } from "../src/wal/spool.ts";
import { freePort, ROOT, startProcess, startTaskArgs } from "../tests/helpers/process.ts";
import { connect, type Profile, selfTimes } from "./profile.ts";

const SAMPLING_INTERVAL_US = 200;
const TOP_FUNCTIONS = 25;
const RECORD_BYTES = 128;
const RECORDS_DEFAULT = 1_000_000;
const MAX_COUNT_DEFAULT = 10_000;

/** `count` valid 128-byte change records straight into the spool, marked applied. */
async function buildBacklog(dataDir: string, count: number): Promise<void> {
  const spool = await Spool.open({ walDir: joinPath(dataDir, "wal"), timeline: 1, term: 1 });
  const padding = "x".repeat(RECORD_BYTES);
  const payload = (i: number) => {
    const base = { op: "put", collection: "bench", key: `k${String(i).padStart(10, "0")}` };
    const text = JSON.stringify({ ...base, value: "", ts: 1_700_000_000_000 });
    const value = padding.slice(0, RECORD_BYTES - text.length);
    return new TextEncoder().encode(JSON.stringify({ ...base, value, ts: 1_700_000_000_000 }));
  };
  const perAppend = Math.min(
    GROUP_COMMIT_RECORDS_MAX,
    Math.floor(MIB_BYTES / frameV3ByteLength(RECORD_BYTES)),
  );
  try {
    for (let first = 0; first < count; first += perAppend) {
      const last = Math.min(count, first + perAppend);
      await spool.append(Array.from({ length: last - first }, (_, i) => payload(first + i)));
    }
  } finally {
    await spool.close();
  }
  const kv = await Deno.openKv(joinPath(dataDir, "ferry.kv"));
  try {
    await new KvState(kv).setMeta({ applied_lsn: count, last_term: 1, last_hash: null });
  } finally {
    kv.close();
  }
}

/** The client side: drains `count` records, then prints its rate and waits to be profiled out. */
async function drain(base: string, count: number, maxCount: number): Promise<void> {
  const client = new FerryClient(base);
  let since = 0;
  const started = performance.now();
  while (since < count) {
    const pull = await client.pullFrames({ replicaId: "profile-1", sinceLsn: since, maxCount });
    if (pull.corrupt || pull.frames.length === 0) throw new Error(`pull after ${since} failed`);
    for (const frame of pull.frames) {
      if (frame.lsn !== since + 1) throw new Error(`expected LSN ${since + 1}`);
      since = frame.lsn;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ records: since, seconds, rate: since / seconds }));
}

function printTop(what: string, profile: Profile): void {
  const times = selfTimes(profile);
  const total = times.reduce((sum, [, t]) => sum + t, 0);
  console.log(`-- ${what}: ${(total / 1000).toFixed(0)} ms sampled`);
  for (const [name, time] of times.slice(0, TOP_FUNCTIONS)) {
    console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`);
  }
}

async function profileBoth(count: number, maxCount: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-catchup-profile-" });
  const port = freePort();
  const args = startTaskArgs(joinPath(dir, "data"), port);
  const primaryInspect = freePort();
  args.splice(1, 0, `--inspect=127.0.0.1:${primaryInspect}`);
  args.push("--wal-retain-bytes-min", String(64 * 1024 * MIB_BYTES), "--slot-lag-max-records", "0");
  await buildBacklog(joinPath(dir, "data"), count);
  const primary = startProcess(args);
  const closers: Array<() => void> = [];
  try {
    await primary.waitFor("ferry.started");
    const server = await connect(primaryInspect);
    closers.push(server.close);
    const clientInspect = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--inspect-wait=127.0.0.1:${clientInspect}`,
        new URL(import.meta.url).pathname,
        "drain",
        `http://127.0.0.1:${port}`,
        String(count),
        String(maxCount),
      ],
      cwd: ROOT,
      stdout: "piped",
    }).spawn();
    const client = await connect(clientInspect);
    closers.push(client.close);
    for (const side of [server, client]) {
      await side.send("Profiler.enable");
      await side.send("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
      await side.send("Profiler.start");
    }
    await client.send("Runtime.runIfWaitingForDebugger");
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let line = "";
    while (!line.includes("\n")) {
      const { done, value } = await reader.read();
      if (done) throw new Error("the client exited before it drained");
      line += value;
    }
    const result = JSON.parse(line.split("\n")[0]!);
    const { profile: serverProfile } = (await server.send("Profiler.stop")) as { profile: Profile };
    const { profile: clientProfile } = (await client.send("Profiler.stop")) as { profile: Profile };
    for (const close of closers.splice(0)) close();
    reader.releaseLock();
    await child.stdout.cancel().catch(() => undefined);
    await child.status;
    console.log(
      `drain of ${count} records, max_count ${maxCount}: ${Math.round(result.rate)} records/s`,
    );
    await Deno.mkdir(new URL("./profiles/", import.meta.url), { recursive: true });
    for (
      const [name, profile] of [["primary", serverProfile], ["client", clientProfile]] as const
    ) {
      await Deno.writeTextFile(
        new URL(`./profiles/catchup-${name}.cpuprofile`, import.meta.url),
        JSON.stringify(profile),
      );
      printTop(name, profile);
    }
  } finally {
    for (const close of closers) close();
    primary.child.kill("SIGTERM");
    await primary.child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "drain") {
    await drain(Deno.args[1]!, Number(Deno.args[2]), Number(Deno.args[3]));
  } else {
    const count = Number(Deno.args[0] ?? RECORDS_DEFAULT);
    await profileBoth(count, Number(Deno.args[1] ?? MAX_COUNT_DEFAULT));
  }
}
