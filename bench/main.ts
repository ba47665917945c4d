/**
 * Runs the benchmarks: `deno task bench` runs them all, `deno task bench <name>` one of them.
 * Each prints its figures and ratios and appends them to bench/RESULTS.md.
 */

import { runSpoolBench } from "./spool_bench.ts";

const BENCHES: Record<string, () => Promise<void>> = {
  spool: runSpoolBench,
};

const wanted = Deno.args.length > 0 ? Deno.args : Object.keys(BENCHES);
for (const name of wanted) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(", ")}`);
    Deno.exit(2);
  }
  console.log(`== ${name}`);
  await bench();
}
