/**
 * A/B of two builds of the primary under the same wrk load, interleaved in one process tree: this
 * checkout (B) against an earlier commit (A, checked out into a temporary git worktree), each a
 * fresh primary with the start task's flags (the A build's own `src/` granted for its apply
 * worker), a warm-up then the measured run, A and B alternating round by round so that a machine
 * that drifts over the minutes moves both. Prints and records each round's B/A ratio.
 *
 * Run: `deno run -A bench/ab_builds.ts <commit> [--clients=1] [--records=1] [--rounds=4]
 * [--seconds=6]` (`--records=1000` for 1000-record batches).
 */

import { numberOption, positionalArgs } from "./args.ts";
import { joinPath } from "../src/core/files.ts";
import { freePort, killProcess, startProcess, startTaskArgs } from "../tests/helpers/process.ts";
import { appendResults, formatNumber } from "./results.ts";
import { ensureWrk, runWrk } from "./wrk.ts";
import { type EarlierBuild, ROOT, withEarlierBuild } from "./earlier_build.ts";

const WARMUP_MS = 2000;
const VALUE_CHARS = 128;
const KEY_SPACE = 100_000;

interface Options {
  commit: string;
  clients: number;
  records: number;
  rounds: number;
  seconds: number;
}

function parseOptions(args: string[]): Options {
  const [commit] = positionalArgs(args);
  if (commit === undefined) throw new Error("usage: ab_builds.ts <commit> [--clients=N] ...");
  return {
    commit,
    clients: numberOption("clients", 1, args),
    records: numberOption("records", 1, args),
    rounds: numberOption("rounds", 4, args),
    seconds: numberOption("seconds", 6, args),
  };
}

/** Requests per second of one fresh primary of the build in `root`. */
async function measure(root: string, dataDir: string, options: Options): Promise<number> {
  const port = freePort();
  const args = startTaskArgs(dataDir, port).map((arg) =>
    arg === "main.ts" ? joinPath(root, "main.ts") : arg.replace(",./src", `,${root}/src`)
  );
  const primary = startProcess(args);
  try {
    await primary.waitFor("ferry.started");
    const load = {
      connections: options.clients,
      records: options.records,
      valueChars: VALUE_CHARS,
      keySpace: KEY_SPACE,
    };
    const base = `http://127.0.0.1:${port}`;
    await runWrk(base, { ...load, durationMs: WARMUP_MS });
    const result = await runWrk(base, { ...load, durationMs: options.seconds * 1000 });
    return result.requests / (result.duration_ms / 1000);
  } finally {
    await killProcess(primary, "SIGTERM");
  }
}

/** Alternates A and B round by round; prints and records each round and the B/A summary. */
async function runRounds(build: EarlierBuild, options: Options): Promise<void> {
  const { root, tmp, commitA, commitB, dirty } = build;
  const lines: string[] = [];
  const ratios: number[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    const a = await measure(root, joinPath(tmp, `a${round}`), options);
    const b = await measure(ROOT, joinPath(tmp, `b${round}`), options);
    ratios.push(b / a);
    const line = `round ${round}: A ${formatNumber(a)}/s, B ${formatNumber(b)}/s, B/A ${
      (b / a).toFixed(2)
    }`;
    console.log(line);
    lines.push(`- ${line}`);
  }
  const sorted = [...ratios].sort((x, y) => x - y);
  const summary = `B/A over ${options.rounds} rounds: ${sorted[0]!.toFixed(2)}-${
    sorted.at(-1)!.toFixed(2)
  }, median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)}`;
  console.log(summary);
  await appendResults("A/B of two builds (wrk, interleaved)", [
    `A: ${commitA}; B: ${commitB}${dirty ? " with uncommitted changes" : ""}. ` +
    `${options.clients} client(s), ${options.records} record(s) per request (${VALUE_CHARS}-character values, ` +
    `${formatNumber(KEY_SPACE)} keys), ${WARMUP_MS} ms warm-up, ${options.seconds} s measured, ` +
    "a fresh primary (start task flags) per run, A and B alternating.",
    "",
    ...lines,
    "",
    summary,
  ]);
}

if (import.meta.main) {
  const options = parseOptions(Deno.args);
  if (!await ensureWrk()) throw new Error("wrk is needed (Debian's package)");
  await withEarlierBuild(options.commit, (build) => runRounds(build, options));
}
