/**
 * The long crash loop: 30 cycles of kill -9 of the primary under concurrent writes with two
 * replicas attached (the CI test runs 5). Records restart and convergence times.
 *
 * Run: deno task bench crashloop   (FERRY_CRASH_CYCLES=N to change the count)
 */

import { runCrashLoop } from "../tests/helpers/crash_loop.ts";
import { appendResults, formatNumber, percentile } from "./results.ts";

const DEFAULT_CYCLES = 30;

export async function runCrashLoopBench(): Promise<void> {
  const cycles = Number(Deno.env.get("FERRY_CRASH_CYCLES") ?? DEFAULT_CYCLES);
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-crash-", dir: "." });
  try {
    const report = await runCrashLoop(dir, cycles);
    const line = (name: string, values: number[]) =>
      `| ${name} | ${formatNumber(percentile(values, 50))} | ${
        formatNumber(percentile(values, 99))
      } | ${formatNumber(Math.max(...values))} |`;
    const lines = [
      `${report.cycles} cycles of kill -9 of the primary under 4 concurrent writers, 2 replicas attached: ` +
      `${
        formatNumber(report.acknowledgedWrites)
      } acknowledged writes, none missing after any restart; ` +
      `replicas converged after every cycle and hold exactly the primary's state at the end (final LSN ${
        formatNumber(report.finalLsn)
      }).`,
      "",
      "| per cycle (ms) | p50 | p99 | max |",
      "|---|---:|---:|---:|",
      line("kill to restarted primary listening", report.restartMs),
      line("restart to both replicas caught up", report.convergeMs),
    ];
    console.log(lines.join("\n"));
    await appendResults("Crash loop: kill -9 of the primary", lines);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await runCrashLoopBench();
