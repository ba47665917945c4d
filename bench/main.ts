/**
 * Runs the benchmarks: `deno task bench` runs them all, `deno task bench <name>` one of them.
 * Each prints its figures and ratios and appends them to bench/RESULTS.md.
 */

import { runSpoolBench } from "./spool_bench.ts";
import { runCatchupBench, runResumeBench } from "./replication_bench.ts";
import { runFanoutBench } from "./fanout_bench.ts";
import { runBatchBench, runWritesBench } from "./write_bench.ts";
import { runCrashLoopBench } from "./crash_loop_bench.ts";
import { runStateBench } from "./state_bench.ts";
import { runSustainedBench } from "./sustained_bench.ts";
import { runEventsBench } from "./events_bench.ts";
import { runSegmentsBench } from "./segments_bench.ts";
import { runEtcdBench } from "./etcd_bench.ts";
import { runFailoverBench } from "./failover_bench.ts";

const BENCHES: Record<string, () => Promise<void>> = {
  spool: runSpoolBench,
  writes: runWritesBench,
  batch: runBatchBench,
  catchup: runCatchupBench,
  fanout: runFanoutBench,
  resume: runResumeBench,
  crashloop: runCrashLoopBench,
  state: runStateBench,
  sustained: runSustainedBench,
  events: runEventsBench,
  segments: runSegmentsBench,
  etcd: runEtcdBench,
  failover: runFailoverBench,
};

// Arguments starting with "--" are options the benchmarks read themselves (e.g. --quick).
const names = Deno.args.filter((arg) => !arg.startsWith("--"));
const wanted = names.length > 0 ? names : Object.keys(BENCHES);
for (const name of wanted) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(", ")}`);
    Deno.exit(2);
  }
  console.log(`== ${name}`);
  await bench();
}
