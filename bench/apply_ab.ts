/**
 * A/B of the state apply of two builds in one process: this checkout (B) against an earlier commit
 * (A, checked out into a temporary git worktree). Each run applies the same spool frames (128-byte
 * values, 2 500 per `applyFrames` call, as the apply worker gets them) into a fresh Deno KV file;
 * A and B alternate run by run (and which goes first), so a machine that drifts moves both. No HTTP
 * and no other thread: what it compares is the apply's own cost. Prints each run's records/s and
 * the process's CPU per record, and the medians of B/A; records them in bench/RESULTS.md.
 *
 * Run: `deno run -A bench/apply_ab.ts <commit> [--keys=new|rewrite|scattered] [--records=200000]
 * [--rounds=6]` (`new`: every key new, in time order; `rewrite`: 20 000 keys written again in
 * order; `scattered`: 100 000 keys in an order scattered over the key space, new then updated).
 */

import process from "node:process";
import { numberOption, positionalArgs, stringOption } from "./args.ts";
import { joinPath } from "../src/core/files.ts";
import { appendResults, formatNumber, percentile } from "./results.ts";
import { type EarlierBuild, ROOT, withEarlierBuild } from "./earlier_build.ts";
import type { ApplyFrame } from "../src/state/apply_frames.ts";

const FRAMES_PER_CALL = 2_500;
const VALUE_CHARS = 128;
const REWRITTEN_KEYS = 20_000;
const SCATTERED_KEYS = 100_000;
/** Coprime with `SCATTERED_KEYS`: `i * stride` visits every key once per cycle, out of order. */
const SCATTER_STRIDE = 7_919;

/** What a build offers: its store and its apply, loaded from its own `src/`. */
interface Build {
  newState(kv: Deno.Kv): unknown;
  applyFrames(state: unknown, frames: readonly ApplyFrame[], done: () => void): Promise<unknown>;
}

async function loadBuild(root: string): Promise<Build> {
  const store = await import(joinPath(root, "src/state/kv_state.ts"));
  const apply = await import(joinPath(root, "src/state/apply_frames.ts"));
  return { newState: (kv) => new store.KvState(kv), applyFrames: apply.applyFrames };
}

function framesOf(records: number, keys: string): ApplyFrame[][] {
  const encoder = new TextEncoder();
  const value = "x".repeat(VALUE_CHARS);
  const calls: ApplyFrame[][] = [];
  for (let first = 0; first < records; first += FRAMES_PER_CALL) {
    const frames: ApplyFrame[] = [];
    for (let i = first; i < Math.min(records, first + FRAMES_PER_CALL); i++) {
      const key = _keyOf(keys, i);
      const record = { op: "put", collection: "bench", key, value, ts: 1_700_000_000_000 + i };
      frames.push({ lsn: i + 1, term: 1, payload: encoder.encode(JSON.stringify(record)) });
    }
    calls.push(frames);
  }
  return calls;
}

function _keyOf(keys: string, i: number): string {
  if (keys === "new") return `k${String(i).padStart(9, "0")}`;
  if (keys === "rewrite") return `k${i % REWRITTEN_KEYS}`;
  return `k${String((i * SCATTER_STRIDE) % SCATTERED_KEYS).padStart(6, "0")}`;
}

/** One run: records/s and CPU µs (the whole process) per record. */
interface Run {
  rate: number;
  cpuUs: number;
}

/** One run of `build` into a fresh store. */
async function run(build: Build, calls: ApplyFrame[][], records: number): Promise<Run> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-apply-ab-" });
  const kv = await Deno.openKv(joinPath(dir, "state.kv"));
  try {
    const state = build.newState(kv);
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (const frames of calls) await build.applyFrames(state, frames, () => {});
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    return { rate: records / seconds, cpuUs: (used.user + used.system) / records };
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** What one A/B compares. */
interface Options {
  keys: string;
  records: number;
  rounds: number;
}

/** Alternates A and B run by run (and which goes first); prints and records the runs and medians. */
async function runRounds(build: EarlierBuild, options: Options): Promise<void> {
  const { keys, records, rounds } = options;
  const builds = { A: await loadBuild(build.root), B: await loadBuild(ROOT) };
  const calls = framesOf(records, keys);
  const seen: Record<"A" | "B", Run[]> = { A: [], B: [] };
  const lines: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const name of round % 2 === 1 ? ["A", "B"] as const : ["B", "A"] as const) {
      const result = await run(builds[name], calls, records);
      seen[name].push(result);
      const line = `round ${round} ${name}: ${formatNumber(Math.round(result.rate))} records/s, ` +
        `${result.cpuUs.toFixed(1)} µs CPU per record`;
      console.log(line);
      lines.push(`- ${line}`);
    }
  }
  const median = (name: "A" | "B", of: keyof Run) => percentile(seen[name].map((r) => r[of]), 50);
  const summary = `median B/A over ${rounds} rounds: ${
    (median("B", "rate") / median("A", "rate")).toFixed(2)
  } records/s, ${(median("B", "cpuUs") / median("A", "cpuUs")).toFixed(2)} CPU per record`;
  console.log(summary);
  await appendResults("A/B of the state apply of two builds (in one process)", [
    `A: ${build.commitA}; B: ${build.commitB}${build.dirty ? " with uncommitted changes" : ""}. ` +
    `${formatNumber(records)} records, keys ${keys} (${VALUE_CHARS}-character values, ` +
    `${FRAMES_PER_CALL} frames per applyFrames call), a fresh Deno KV file per run, A and B ` +
    "alternating.",
    "",
    ...lines,
    "",
    summary,
  ]);
}

if (import.meta.main) {
  const [commit] = positionalArgs();
  if (commit === undefined) {
    throw new Error("usage: apply_ab.ts <commit> [--keys=new|rewrite|scattered]");
  }
  const keys = stringOption("keys") ?? "new";
  if (!["new", "rewrite", "scattered"].includes(keys)) {
    throw new Error("--keys is new, rewrite or scattered");
  }
  const options = {
    keys,
    records: numberOption("records", 200_000),
    rounds: numberOption("rounds", 6),
  };
  await withEarlierBuild(commit, (build) => runRounds(build, options));
}
