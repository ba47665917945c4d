/**
 * What the fan-out benchmark reads about processes and measures: CPU ticks and RSS from /proc,
 * child processes that say "ready" on stderr and print one JSON line on stdout, and lag summaries.
 */

import { ROOT } from "../tests/helpers/process.ts";

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat). */
export async function cpuTicks(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** Clock ticks per second (`getconf CLK_TCK`; 100 when getconf is missing). */
export async function clockTicksPerSecond(): Promise<number> {
  const DEFAULT_CLK_TCK = 100;
  try {
    const { stdout, success } = await new Deno.Command("getconf", {
      args: ["CLK_TCK"],
      stdout: "piped",
    }).output();
    const value = Number(new TextDecoder().decode(stdout).trim());
    return success && value > 0 ? value : DEFAULT_CLK_TCK;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return DEFAULT_CLK_TCK;
    throw error;
  }
}

/** CPU seconds a set of processes use between `start()` and `stop()`. */
export async function cpuMeter(pids: readonly number[]): Promise<{ stop(): Promise<number[]> }> {
  const before = await Promise.all(pids.map(cpuTicks));
  const ticksPerSecond = await clockTicksPerSecond();
  return {
    async stop() {
      const after = await Promise.all(pids.map(cpuTicks));
      return after.map((ticks, i) => (ticks - before[i]!) / ticksPerSecond);
    },
  };
}

/** A child process of a benchmark: its "ready" line, and the JSON line it prints at the end. */
export interface Peer {
  child: Deno.ChildProcess;
  /** Resolves when the peer writes "ready" on stderr. */
  ready: Promise<void>;
  /** The last stdout line, parsed; rejects when the peer fails. */
  output<T>(): Promise<T>;
  kill(): Promise<void>;
}

/** Starts `deno run <flags> <script> <json task>` in the project root. */
export function spawnPeer(script: string, flags: string[], task: unknown): Peer {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, script, JSON.stringify(task)],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  let stderrText = "";
  const stderrDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderrText += chunk;
      if (stderrText.includes("ready\n")) markReady();
    }
  })();
  return {
    child,
    ready,
    async output<T>() {
      const status = await child.status;
      const text = await stdout;
      await stderrDone;
      if (!status.success) throw new Error(`${script} exited ${status.code}:\n${stderrText}`);
      return JSON.parse(text.trim().split("\n").pop()!) as T;
    },
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
      await stdout.catch(() => undefined);
      await stderrDone.catch(() => undefined);
    },
  };
}

/** Lag figures in ms. */
export interface LagSummary {
  min: number;
  p50: number;
  p99: number;
  max: number;
}

/** The p-th percentile of sorted values (same rank rule as results.ts `percentile`). */
function _sortedPercentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

/** Sorts `values` in place and summarizes them. */
export function summarize(values: Float64Array): LagSummary {
  values.sort();
  return {
    min: values[0] ?? 0,
    p50: _sortedPercentile(values, 50),
    p99: _sortedPercentile(values, 99),
    max: values[values.length - 1] ?? 0,
  };
}
