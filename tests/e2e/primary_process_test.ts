// The primary as a real process with the scoped permissions of `deno task start` (SPEC.md 10):
// write, pull raw frames and check every CRC, SIGTERM (exit 0), restart, same LSNs and slots.
// The command line is the start task's own, read from deno.json, with only the data directory and
// the port swapped for a temp dir and a free port.

import assert from "node:assert/strict";
import { decodeFrame } from "../../src/wal/frame.ts";
import { withTempDir } from "../helpers/temp.ts";

import {
  freePort,
  ROOT,
  type RunningProcess,
  startProcess,
  startTaskArgs,
} from "../helpers/process.ts";

async function post(base: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${base}${path}`, {
    method: path.endsWith("/ack") ? "POST" : path.startsWith("/v1/replicas") ? "PUT" : "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return await response.json();
}

function framesOf(bytes: Uint8Array): number[] {
  const lsns: number[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const result = decodeFrame(bytes, offset);
    assert.equal(result.status, "ok", "every frame's CRC checks");
    if (result.status !== "ok") break;
    lsns.push(result.frame.lsn);
    offset += result.frame.byteLength;
  }
  return lsns;
}

/** Writes `count` records (`c`/`k0`...) and reads the last back once the state has applied it. */
async function writeAndReadBack(base: string, count: number): Promise<void> {
  await post(base, "/v1/records", {
    records: Array.from({ length: count }, (_, i) => ({
      op: "put",
      collection: "c",
      key: `k${i}`,
      value: i,
    })),
  });
  const last = count - 1;
  const read = await fetch(`${base}/v1/records/c/k${last}?min_lsn=${count}&await_timeout_ms=10000`);
  assert.equal(read.status, 200);
  assert.equal((await read.json()).value, last);
}

/** SIGTERM: the process exits 0. */
async function stopWithSigterm(primary: RunningProcess): Promise<void> {
  primary.child.kill("SIGTERM");
  assert.equal((await primary.child.status).code, 0);
  await primary.stderrDone;
}

Deno.test("deno task start's flags: write, pull raw frames, SIGTERM exits 0, restart keeps LSNs and slots", async () => {
  await withTempDir(async (dir) => {
    const dataDir = `${dir}/data`;
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    const first = startProcess(startTaskArgs(dataDir, port));
    const started = await first.waitFor("ferry.started");
    assert.equal(started.address, `127.0.0.1:${port}`);
    assert.ok(first.lines.some((l) => l.includes('"ferry.recovered"')));
    const written = await post(base, "/v1/records", {
      records: Array.from(
        { length: 50 },
        (_, i) => ({ op: "put", collection: "c", key: `k${i}`, value: i }),
      ),
    });
    assert.deepEqual([written.first_lsn, written.last_lsn], [1, 50]);
    await post(base, "/v1/replicas/edge-1", { region: "eu" });
    const raw = await fetch(`${base}/v1/wal?replica_id=edge-1&since_lsn=0&max_count=100`, {
      headers: { accept: "application/x-ferry-frames" },
    });
    assert.equal(raw.headers.get("x-ferry-current-lsn"), "50");
    assert.deepEqual(
      framesOf(new Uint8Array(await raw.arrayBuffer())),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    await post(base, "/v1/replicas/edge-1/ack", { applied_lsn: 50, durable_lsn: 40 });
    first.child.kill("SIGTERM");
    assert.equal((await first.child.status).code, 0);
    await first.stderrDone;
    assert.ok(first.lines.some((l) => l.includes('"ferry.stopped"')));

    const second = startProcess(startTaskArgs(dataDir, port));
    const recovered = await second.waitFor("ferry.recovered");
    assert.equal(recovered.current_lsn, 50);
    assert.equal(recovered.slots, 1);
    await second.waitFor("ferry.started");
    const status = await (await fetch(`${base}/v1/status`)).json();
    assert.equal(status.current_lsn, 50);
    assert.equal(status.slots[0].replica_id, "edge-1");
    assert.equal(status.slots[0].restart_lsn, 40);
    assert.equal(status.slots[0].confirmed_write_lsn, 50);
    second.child.kill("SIGTERM");
    assert.equal((await second.child.status).code, 0);
    await second.stderrDone;
  });
});

Deno.test("a data directory outside the granted paths exits non-zero naming the flags, writing nothing", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const outside = `${dir}/outside`;
    const args = startTaskArgs(`${dir}/data`, port);
    args.splice(args.indexOf("--data-dir"), 2, "--data-dir", outside);
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    });
    const output = await child.output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.notEqual(output.code, 0);
    assert.ok(stderr.includes(`--allow-read=${outside}`), stderr);
    assert.ok(stderr.includes(`--allow-write=${outside}`), stderr);
    assert.throws(() => Deno.statSync(outside), Deno.errors.NotFound);
    assert.throws(() => Deno.statSync(`${dir}/data`), Deno.errors.NotFound);
  });
});

Deno.test("without a tokens file ferry refuses to listen beyond loopback", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const args = startTaskArgs(`${dir}/data`, port).map((arg) =>
      arg.startsWith("--allow-net=") ? `--allow-net=0.0.0.0:${port}` : arg
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: [...args, "--host", "0.0.0.0"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.notEqual(output.code, 0);
    assert.match(
      new TextDecoder().decode(output.stderr),
      /refusing to listen on 0\.0\.0\.0 without a tokens file/,
    );
  });
});

Deno.test("the state applies in a worker under the start task's flags; without read access to src/ in the primary's thread, saying why", async () => {
  await withTempDir(async (dir) => {
    for (const srcReadable of [true, false]) {
      const dataDir = `${dir}/data-${srcReadable}`;
      const port = freePort();
      const base = `http://127.0.0.1:${port}`;
      const args = startTaskArgs(dataDir, port).map((arg) =>
        !srcReadable && arg.startsWith("--allow-read=") ? `--allow-read=${dataDir}` : arg
      );
      const primary = startProcess(args);
      await primary.waitFor("ferry.started");
      await writeAndReadBack(base, 50);
      const mode = await primary.waitFor("state.apply_mode");
      assert.equal(mode.mode, srcReadable ? "worker" : "in_process");
      if (!srcReadable) assert.match(String(mode.reason), /--allow-read/);
      await stopWithSigterm(primary);
      assert.ok(
        !primary.lines.some((l) => l.includes('"state.apply_failed"')),
        primary.lines.join("\n"),
      );
    }
  });
});

/** The nice value of each thread of process `pid`, by thread id. */
function threadNices(pid: number): Map<number, number> {
  const nices = new Map<number, number>();
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    const stat = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/stat`);
    // Fields after the command's closing parenthesis; the nice value is the 19th field.
    nices.set(Number(task.name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]));
  }
  return nices;
}

Deno.test("under the start task's flags the apply worker and its SQLite thread run below the write path's priority; without --allow-sys the apply says so and applies all the same", async () => {
  await withTempDir(async (dir) => {
    for (const sysGranted of [true, false]) {
      const dataDir = `${dir}/data-${sysGranted}`;
      const port = freePort();
      const base = `http://127.0.0.1:${port}`;
      const args = startTaskArgs(dataDir, port).filter((arg) =>
        sysGranted || !arg.startsWith("--allow-sys=")
      );
      assert.equal(args.includes("--allow-sys=getPriority,setPriority"), sysGranted);
      const primary = startProcess(args);
      const started = await primary.waitFor("ferry.started");
      const permissions = started.permissions as Record<string, boolean>;
      assert.equal(permissions["--allow-sys=getPriority,setPriority"], sysGranted);
      await writeAndReadBack(base, 20);
      const priority = await primary.waitFor("state.apply_priority");
      const status = await (await fetch(`${base}/v1/status`)).json();
      // A rest after the last batch (a few ms while the writes came) may still be under way.
      const { resting, ...apply } = status.state_apply;
      assert.equal(typeof resting, "boolean");
      assert.deepEqual(apply, {
        mode: "worker",
        priority: sysGranted ? "background" : "process",
        lag_ms: 0,
      });
      // The same figures for Prometheus: no lag, and a rest counter that is there from the start.
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /^ferry_state_apply_lag_seconds 0$/m);
      assert.match(metrics, /^ferry_state_apply_rest_seconds_total \d/m);
      const pid = primary.child.pid;
      const nices = threadNices(pid);
      const processNice = nices.get(pid)!;
      const lowered = Math.min(19, processNice + 10);
      if (sysGranted) {
        assert.equal(priority.nice, lowered);
        const low = [...nices.values()].filter((nice) => nice === lowered);
        assert.ok(
          low.length >= 2,
          `the worker and its SQLite thread: ${JSON.stringify([...nices])}`,
        );
      } else {
        assert.equal(priority.level, "warn");
        assert.equal(priority.grant, "--allow-sys=getPriority,setPriority");
        assert.match(String(priority.reason), /sys/);
        assert.ok([...nices.values()].every((nice) => nice === processNice));
      }
      await stopWithSigterm(primary);
    }
  });
});

Deno.test("--state-backlog-bytes-max: past the bound each write waits for the state to apply the ones before it (logged and counted)", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    // One byte: below a segment, so a write waits until the state has applied everything before it.
    const primary = startProcess([
      ...startTaskArgs(`${dir}/data`, port),
      "--state-backlog-bytes-max",
      "1",
    ]);
    await primary.waitFor("ferry.started");
    const value = "x".repeat(100);
    let previousLastLsn = 0;
    for (let write = 0; write < 5; write++) {
      const records = Array.from({ length: 1000 }, (_, i) => ({
        op: "put",
        collection: "c",
        key: `k${write}-${i}`,
        value,
      }));
      const answer = await post(base, "/v1/records", { records });
      const status = await (await fetch(`${base}/v1/status`)).json();
      assert.ok(status.applied_lsn >= previousLastLsn, "applied before this write was taken");
      previousLastLsn = answer.last_lsn as number;
    }
    // Applying 1000 records takes the state longer than the next request takes to come.
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const count = Number(metrics.match(/^ferry_state_writes_held_total (\d+)$/m)?.[1]);
    assert.ok(count >= 1 && count <= 4, `writes held: ${count}`);
    const held = await primary.waitFor("state.writes_held");
    assert.equal(held.bytes_max, 1);
    await stopWithSigterm(primary);
  });
});
