// Corruption at rest, with real processes started with the tasks' own scoped permissions and real
// files damaged while the process is stopped. The rule under test: a damaged file yields a clear
// error or a documented fallback, never silently wrong data.

import assert from "node:assert/strict";
import { decodeCatalog } from "../../src/slots/catalog.ts";
import { CatalogFormatError } from "../../src/core/errors.ts";
import {
  assertSameState,
  getJson,
  type Node,
  replicaKvPath,
  restart,
  startPrimary,
  startReplica,
  stop,
  waitApplied,
  waitStateAtHead,
  waitUntil,
  write,
} from "../helpers/cluster.ts";
import { startProcess } from "../helpers/process.ts";
import { withTempDir } from "../helpers/temp.ts";

type LogLine = Record<string, unknown> & { event: string; level: string };
type Pulled = { lsn: number; record: Record<string, unknown> };

/** The node's stderr as parsed log lines; a line that is not JSON (a stack trace) fails the test. */
function logLines(lines: readonly string[]): LogLine[] {
  return lines.filter((line) => line.trim() !== "").map((line) => {
    try {
      return JSON.parse(line) as LogLine;
    } catch {
      throw new Error(`not a structured log line: ${line}\n${lines.join("\n")}`);
    }
  });
}

/** The value of one series in /metrics (`name` may carry labels). */
async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is exposed`);
  return Number(line.slice(name.length + 1));
}

async function pull(
  base: string,
  sinceLsn: number,
  maxCount: number,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}/v1/wal?since_lsn=${sinceLsn}&max_count=${maxCount}`);
  return { status: response.status, body: await response.json() };
}

/** Every record the primary serves, page by page. */
async function pullAll(base: string): Promise<Pulled[]> {
  const all: Pulled[] = [];
  for (;;) {
    const page = await pull(base, all.length, 1000);
    assert.equal(page.status, 200);
    const records = page.body.records as Pulled[];
    if (records.length === 0) return all;
    all.push(...records);
  }
}

/** Writes `batches` requests of `perBatch` records each (one group commit per request). */
async function writeBatches(
  base: string,
  options: { batches: number; perBatch: number; tag: string },
): Promise<number> {
  let lastLsn = 0;
  for (let b = 0; b < options.batches; b++) {
    const records = Array.from({ length: options.perBatch }, (_, i) => ({
      op: "put",
      collection: "c",
      key: `${options.tag}-${b}-${i}`,
      value: { b, i, tag: options.tag, pad: "x".repeat(60) },
    }));
    const { status, body } = await write(base, records);
    assert.equal(status, 200, JSON.stringify(body));
    lastLsn = body.last_lsn as number;
  }
  return lastLsn;
}

async function waitStateApplied(base: string, lsn: number): Promise<void> {
  await waitUntil(`the primary's state to apply ${lsn}`, async () => {
    return ((await getJson(base, "/v1/status")).applied_lsn as number) >= lsn;
  });
}

async function send(base: string, method: string, path: string, body: unknown): Promise<void> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.text());
}

/** Bound on a start-up that is expected to fail. */
const REFUSAL_TIMEOUT_MS = 15_000;

/** Runs a node's command line until it exits (it is expected to refuse to start). */
async function runUntilExit(node: Node): Promise<{ code: number; lines: LogLine[] }> {
  const process = startProcess(node.args);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    process.child.status.then(() => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), REFUSAL_TIMEOUT_MS)),
  ]);
  clearTimeout(timer);
  if (!exited) process.child.kill("SIGKILL");
  const status = await process.child.status;
  await process.stderrDone;
  assert.ok(exited, `expected the process to refuse to start:\n${process.lines.join("\n")}`);
  return { code: status.code, lines: logLines(process.lines) };
}

/** Every file under `dir` (relative path → bytes). */
async function readTree(dir: string, prefix = ""): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) {
      for (const [name, bytes] of await readTree(dir, path)) files.set(name, bytes);
    } else {
      files.set(path, await Deno.readFile(`${dir}/${path}`));
    }
  }
  return files;
}

async function copyTree(from: string, to: string): Promise<void> {
  for (const [path, bytes] of await readTree(from)) {
    await Deno.mkdir(`${to}/${path}`.replace(/\/[^/]*$/, ""), { recursive: true });
    await Deno.writeFile(`${to}/${path}`, bytes);
  }
}

/** Deterministic noise, so a failure can be replayed byte for byte. */
function noise(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1_103_515_245 + 12_345) & 0x7fff_ffff;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Overwrites the first 100 bytes: the SQLite header ("SQLite format 3", page size, counters). */
async function garbleHeader(path: string): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes.set(noise(100, 5), 0);
  await Deno.writeFile(path, bytes);
}

async function truncateToHalf(path: string): Promise<void> {
  const size = (await Deno.stat(path)).size;
  await Deno.truncate(path, Math.floor(size / 2));
}

Deno.test("a flipped bit in a sealed segment: start-up succeeds; a pull over it is a 500 wal_corrupt naming the file (no server path), counted and logged once; status, metrics and topology still answer; records before and after it are served", async () => {
  await withTempDir(async (dir) => {
    let primary = await startPrimary(`${dir}/p`, ["--segment-bytes-max", "4096"]);
    let expected: Pulled[];
    try {
      const last = await writeBatches(primary.base, { batches: 40, perBatch: 5, tag: "w" });
      // Applied everything before the stop, so the state applier has no reason to read the
      // damaged segment after the restart, and only the pulls below meet it.
      await waitStateApplied(primary.base, last);
      expected = await pullAll(primary.base);
      assert.equal(expected.length, 200);
    } finally {
      await stop(primary);
    }
    const walDir = `${dir}/p/wal/00000001`;
    const names = (await Array.fromAsync(Deno.readDir(walDir))).map((e) => e.name).sort();
    assert.ok(names.length >= 4, `several sealed segments: ${names}`);
    const damaged = names[1]!;
    const firstLsn = Number(damaged.slice(0, 20));
    const nextFirstLsn = Number(names[2]!.slice(0, 20));
    const bytes = await Deno.readFile(`${walDir}/${damaged}`);
    bytes[bytes.byteLength >> 1]! ^= 0x10;
    await Deno.writeFile(`${walDir}/${damaged}`, bytes);

    primary = await restart(primary);
    try {
      assert.equal(await metric(primary.base, "ferry_wal_corruption_total"), 0);
      // A replica that has acked nothing: its lag spans the damaged segment.
      await send(primary.base, "PUT", "/v1/replicas/edge-1", { since_lsn: 0 });
      for (const since of [firstLsn - 1, nextFirstLsn - 3, 0]) {
        // Starting inside the damaged segment, or before it and running into it: the whole pull
        // fails rather than serving a prefix that silently stops at the damage.
        const over = await pull(primary.base, since, 1000);
        assert.equal(over.status, 500, `pull since ${since}: ${JSON.stringify(over.body)}`);
        assert.equal(over.body.error, "wal_corrupt");
        assert.ok((over.body.message as string).includes(damaged), over.body.message as string);
        assert.ok(!JSON.stringify(over.body).includes(dir), "no server path in the body");
        assert.equal(over.body.records, undefined, "no records with an error");
      }
      const raw = await fetch(`${primary.base}/v1/wal?since_lsn=${firstLsn}`, {
        headers: { accept: "application/x-ferry-frames" },
      });
      assert.equal(raw.status, 500, "raw-frame pulls (what replicas use) fail the same way");
      assert.equal((await raw.json()).error, "wal_corrupt");
      assert.equal(
        await metric(primary.base, "ferry_wal_corruption_total"),
        1,
        "one damaged segment is one corruption, however often it is read",
      );
      for (const path of ["/v1/status", "/metrics", "/v1/topology"]) {
        const answer = await fetch(`${primary.base}${path}`);
        assert.equal(answer.status, 200, `${path} answers despite the damage`);
        await answer.body?.cancel();
      }

      const before = await pull(primary.base, 0, firstLsn - 1);
      assert.equal(before.status, 200);
      assert.deepEqual(before.body.records, expected.slice(0, firstLsn - 1));
      const after = await pull(primary.base, nextFirstLsn - 1, 1000);
      assert.equal(after.status, 200);
      assert.deepEqual(after.body.records, expected.slice(nextFirstLsn - 1));

      const logged = logLines(primary.process.lines).filter((l) => l.event === "spool.corruption");
      assert.equal(logged.length, 1, "logged once");
      assert.equal(logged[0]!.level, "error");
      assert.ok((logged[0]!.path as string).endsWith(damaged));
      assert.ok((logged[0]!.message as string).includes(damaged));
    } finally {
      await stop(primary);
    }
  });
});

Deno.test("a slot catalog with flipped bits: slots load from the KV copy with a warning and a metric, are intact, and the catalog is rewritten", async () => {
  await withTempDir(async (dir) => {
    let primary = await startPrimary(`${dir}/p`);
    let slotsBefore: unknown;
    try {
      const last = await writeBatches(primary.base, { batches: 4, perBatch: 5, tag: "s" });
      await send(primary.base, "PUT", "/v1/replicas/edge-1", { region: "eu" });
      await send(primary.base, "PUT", "/v1/replicas/edge-2", { region: "us" });
      await send(primary.base, "POST", "/v1/replicas/edge-1/ack", {
        applied_lsn: last,
        durable_lsn: last - 5,
      });
      await send(primary.base, "POST", "/v1/replicas/edge-2/ack", { applied_lsn: 7 });
      slotsBefore = (await getJson(primary.base, "/v1/slots")).slots;
      assert.equal((slotsBefore as unknown[]).length, 2);
    } finally {
      await stop(primary);
    }
    const catalogPath = `${dir}/p/slots.catalog`;
    const catalog = await Deno.readFile(catalogPath);
    const generation = decodeCatalog(catalog).generation;
    catalog[catalog.byteLength >> 1]! ^= 0x40;
    catalog[20]! ^= 0x04;
    await Deno.writeFile(catalogPath, catalog);
    assert.throws(() => decodeCatalog(catalog), CatalogFormatError);

    primary = await restart(primary);
    try {
      const lines = logLines(primary.process.lines);
      const fallback = lines.find((l) => l.event === "slots.load_fallback");
      assert.ok(fallback, "the fallback is logged");
      assert.equal(fallback.level, "warn");
      assert.equal(fallback.used, "kv");
      assert.match(fallback.other as string, /^corrupt: /);
      assert.equal(lines.find((l) => l.event === "ferry.recovered")!.slots_source, "kv");
      assert.equal(
        await metric(primary.base, 'ferry_slots_load_fallback_total{source="kv"}'),
        1,
      );
      assert.deepEqual((await getJson(primary.base, "/v1/slots")).slots, slotsBefore);
      // The two copies disagreed, so both were rewritten at start-up: the catalog decodes again.
      const rewritten = decodeCatalog(await Deno.readFile(catalogPath));
      assert.ok(rewritten.generation > generation);
      assert.deepEqual(rewritten.slots.map((s) => s.replicaId), ["edge-1", "edge-2"]);
    } finally {
      await stop(primary);
    }
    primary = await restart(primary);
    try {
      const lines = logLines(primary.process.lines);
      assert.ok(!lines.some((l) => l.event.startsWith("slots.load_")), "the copies agree");
      assert.equal(lines.find((l) => l.event === "ferry.recovered")!.slots_source, "catalog");
      assert.deepEqual((await getJson(primary.base, "/v1/slots")).slots, slotsBefore);
    } finally {
      await stop(primary);
    }
  });
});

Deno.test("both slot copies corrupt: the primary refuses to start, names both problems, and changes no file", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/p`);
    try {
      const last = await writeBatches(primary.base, { batches: 3, perBatch: 5, tag: "b" });
      await send(primary.base, "PUT", "/v1/replicas/edge-1", {});
      await send(primary.base, "POST", "/v1/replicas/edge-1/ack", { applied_lsn: last });
    } finally {
      await stop(primary);
    }
    await Deno.writeFile(
      `${dir}/p/slots.catalog`,
      new TextEncoder().encode("garbage, not RDSLOT01"),
    );
    const kv = await Deno.openKv(`${dir}/p/ferry.kv`);
    await kv.set(["slots_meta"], { generation: "x" });
    kv.close();
    const walBefore = await readTree(`${dir}/p/wal`);
    const catalogBefore = await Deno.readFile(`${dir}/p/slots.catalog`);

    const run = await runUntilExit(primary);
    assert.equal(run.code, 1, "exits non-zero");
    assert.ok(!run.lines.some((l) => l.event === "ferry.started"));
    const failed = run.lines.filter((l) => l.event === "ferry.start_failed");
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.level, "error");
    assert.equal(failed[0]!.code, "slots_corrupt");
    const message = failed[0]!.message as string;
    assert.match(message, /catalog corrupt: /);
    assert.match(message, /KV corrupt: slots_meta has no valid generation/);

    assert.deepEqual(await readTree(`${dir}/p/wal`), walBefore, "the spool is byte-identical");
    assert.deepEqual(await Deno.readFile(`${dir}/p/slots.catalog`), catalogBefore);
    const after = await Deno.openKv(`${dir}/p/ferry.kv`);
    try {
      assert.deepEqual(
        (await after.get(["slots_meta"])).value,
        { generation: "x" },
        "KV untouched",
      );
      assert.equal((await Array.fromAsync(after.list({ prefix: ["slots"] }))).length, 1);
    } finally {
      after.close();
    }
  });
});

Deno.test("a damaged ferry.kv: the primary exits 1 with one kv_corrupt line naming the file and what to do; an emptied one is rebuilt from the spool while LSN 1 is retained", async () => {
  await withTempDir(async (dir) => {
    // One data directory, copied for each damage pattern.
    const base = `${dir}/base`;
    let primary = await startPrimary(base);
    let last: number;
    let slotsBefore: unknown;
    try {
      last = await writeBatches(primary.base, { batches: 20, perBatch: 50, tag: "k" });
      await send(primary.base, "PUT", "/v1/replicas/edge-1", {});
      await send(primary.base, "POST", "/v1/replicas/edge-1/ack", { applied_lsn: 100 });
      await waitStateApplied(primary.base, last);
      slotsBefore = (await getJson(primary.base, "/v1/slots")).slots;
    } finally {
      await stop(primary);
    }
    const patterns: Array<
      { name: string; damage: (kvPath: string) => Promise<void>; cause: RegExp }
    > = [
      { name: "header", damage: garbleHeader, cause: /^file is not a database$/ },
      { name: "truncated", damage: truncateToHalf, cause: /^database disk image is malformed$/ },
      {
        name: "page-2",
        damage: async (path) => {
          const bytes = await Deno.readFile(path);
          bytes.set(noise(4096, 9), 4096);
          await Deno.writeFile(path, bytes);
        },
        cause: /^database disk image is malformed$/,
      },
      {
        // SQLite's checks pass; the stored value does not.
        name: "state-meta",
        damage: async (path) => {
          const kv = await Deno.openKv(path);
          await kv.set(["state_meta"], "garbage");
          kv.close();
        },
        cause: /^the state meta "garbage" is corrupt \(it fails its check\)$/,
      },
    ];
    for (const pattern of patterns) {
      const dataDir = `${dir}/${pattern.name}`;
      await copyTree(base, dataDir);
      const kvPath = `${dataDir}/ferry.kv`;
      await pattern.damage(kvPath);
      // Every file but LOCK, which holds the pid of the last process that took the lock.
      const before = await readTree(dataDir);
      before.delete("LOCK");
      const run = await runUntilExit({
        ...primary,
        args: primary.args.map((a) => a.replaceAll(base, dataDir)),
      });
      assert.equal(run.code, 1, `${pattern.name}: exits 1`);
      const errors = run.lines.filter((l) => l.level === "error");
      assert.equal(errors.length, 1, `${pattern.name}: one error line: ${JSON.stringify(errors)}`);
      const failed = errors[0]!;
      assert.equal(failed.event, "ferry.start_failed");
      assert.equal(failed.code, "kv_corrupt");
      assert.equal(failed.path, kvPath);
      assert.match(failed.cause as string, pattern.cause, pattern.name);
      const message = failed.message as string;
      assert.ok(message.includes(kvPath), message);
      assert.match(message, /move .*ferry\.kv .*aside and start ferry again/);
      assert.match(message, /still holds every record from LSN 1/);
      const after = await readTree(dataDir);
      after.delete("LOCK");
      assert.deepEqual(after, before, `${pattern.name}: no file changed, none created`);
    }

    // Emptied (SQLite opens a zero-byte file as a new database): the documented fallback. Slots
    // reload from the catalog, and the state is re-applied from the spool, which holds LSN 1.
    const emptied = `${dir}/emptied`;
    await copyTree(base, emptied);
    await Deno.truncate(`${emptied}/ferry.kv`, 0);
    primary = await startPrimary(emptied);
    try {
      const lines = logLines(primary.process.lines);
      const fallback = lines.find((l) => l.event === "slots.load_fallback");
      assert.equal(fallback?.used, "catalog");
      assert.equal(fallback?.other, "missing");
      assert.deepEqual((await getJson(primary.base, "/v1/slots")).slots, slotsBefore);
      const read = await getJson(
        primary.base,
        `/v1/records/c/k-19-49?min_lsn=${last}&await_timeout_ms=10000`,
      );
      assert.deepEqual(read.value, { b: 19, i: 49, tag: "k", pad: "x".repeat(60) });
      assert.deepEqual(
        (await getJson(primary.base, `/v1/records/c/k-0-0?min_lsn=${last}`)).value,
        { b: 0, i: 0, tag: "k", pad: "x".repeat(60) },
      );
    } finally {
      await stop(primary);
    }
  });
});

Deno.test("an emptied ferry.kv after the spool was pruned: the primary refuses to start instead of serving a state with records missing", async () => {
  await withTempDir(async (dir) => {
    const settings = [
      "--segment-bytes-max",
      "4096",
      "--wal-retain-bytes-min",
      "0",
      "--retention-interval-ms",
      "50",
    ];
    const primary = await startPrimary(`${dir}/p`, settings);
    let oldest: number;
    try {
      const last = await writeBatches(primary.base, { batches: 30, perBatch: 5, tag: "p" });
      await waitStateApplied(primary.base, last);
      oldest = await waitUntil("a prune", async () => {
        const lsn = (await getJson(primary.base, "/v1/status")).oldest_lsn as number;
        return lsn > 1 ? lsn : undefined;
      });
    } finally {
      await stop(primary);
    }
    const kvPath = `${dir}/p/ferry.kv`;
    await Deno.truncate(kvPath, 0);
    const run = await runUntilExit(primary);
    assert.equal(run.code, 1);
    const failed = run.lines.filter((l) => l.event === "ferry.start_failed");
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.code, "kv_corrupt");
    assert.equal(failed[0]!.path, kvPath);
    assert.equal(failed[0]!.applied_lsn, 0);
    assert.ok((failed[0]!.oldest_lsn as number) >= oldest);
    assert.match(
      failed[0]!.message as string,
      /cannot be rebuilt from it: restore .* from a backup/,
    );
  });
});

Deno.test("a damaged replica store is moved aside; the replica starts empty, replays from the primary and converges", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/p`);
    let r1 = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1" });
    try {
      let last = await writeBatches(primary.base, { batches: 5, perBatch: 20, tag: "a" });
      await waitApplied(r1.base, last);
      const rounds: Array<[string, (path: string) => Promise<void>]> = [
        ["header", garbleHeader],
        ["truncated", truncateToHalf],
      ];
      for (const [round, damage] of rounds) {
        await stop(r1);
        const storePath = replicaKvPath(r1.dataDir);
        await damage(storePath);
        // Written while the replica is down: it must catch up on these too.
        last = await writeBatches(primary.base, { batches: 2, perBatch: 20, tag: round });
        r1 = await restart(r1);
        const lines = logLines(r1.process.lines);
        const corrupt = lines.find((l) => l.event === "replica.store_corrupt");
        assert.ok(corrupt, `${round}: the damaged store is reported`);
        assert.equal(corrupt.level, "error");
        assert.equal(corrupt.path, storePath);
        assert.ok(
          await Deno.stat(corrupt.moved_to as string),
          `${round}: the damaged file is kept`,
        );
        assert.match(corrupt.moved_to as string, /state-000000\.kv\.corrupt-\d+$/);
        assert.equal(lines.find((l) => l.event === "replica.recovered")!.applied_lsn, 0);
        for (const key of ["a-0-0", "a-4-19", `${round}-1-19`]) {
          const read = await getJson(
            r1.base,
            `/v1/records/c/${key}?min_lsn=${last}&await_timeout_ms=20000`,
          );
          const [tag, b, i] = key.split("-");
          assert.deepEqual(read.value, { b: Number(b), i: Number(i), tag, pad: "x".repeat(60) });
        }
        const status = await getJson(r1.base, "/v1/status");
        assert.equal(status.rebootstraps_total, 0, "replayed from LSN 1, no snapshot needed");
      }
      const kept = (await Array.fromAsync(Deno.readDir(r1.dataDir))).filter((e) =>
        e.name.includes(".corrupt-")
      );
      assert.equal(kept.length, 2, "one damaged store kept per round");
      await waitStateAtHead(primary.base);
    } finally {
      await stop(r1);
      await stop(primary);
    }
    await assertSameState(primary, [r1]);
  });
});

Deno.test("a damaged replica store after the primary pruned LSN 1: the replica starts empty and re-bootstraps from a snapshot", async () => {
  await withTempDir(async (dir) => {
    const settings = [
      "--segment-bytes-max",
      "4096",
      "--wal-retain-bytes-min",
      "0",
      "--retention-interval-ms",
      "50",
    ];
    const primary = await startPrimary(`${dir}/p`, settings);
    let r1 = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1" });
    try {
      let last = await writeBatches(primary.base, { batches: 30, perBatch: 5, tag: "a" });
      await waitApplied(r1.base, last);
      await waitUntil("a prune past LSN 1", async () => {
        return ((await getJson(primary.base, "/v1/status")).oldest_lsn as number) > 1;
      });
      await stop(r1);
      await garbleHeader(replicaKvPath(r1.dataDir));
      last = await writeBatches(primary.base, { batches: 2, perBatch: 5, tag: "b" });
      r1 = await restart(r1);
      assert.ok(logLines(r1.process.lines).some((l) => l.event === "replica.store_corrupt"));
      const read = await getJson(
        r1.base,
        `/v1/records/c/a-0-0?min_lsn=${last}&await_timeout_ms=20000`,
      );
      assert.deepEqual(read.value, { b: 0, i: 0, tag: "a", pad: "x".repeat(60) });
      const status = await getJson(r1.base, "/v1/status");
      assert.equal(status.rebootstraps_total, 1, "LSN 1 is gone: a snapshot, not a replay");
      await waitStateAtHead(primary.base);
    } finally {
      await stop(r1);
      await stop(primary);
    }
    await assertSameState(primary, [r1]);
  });
});
