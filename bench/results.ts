/** Shared helpers for benchmarks: timing, machine facts, and appending to bench/RESULTS.md. */

/** Where every benchmark writes what it measured. */
export const RESULTS_PATH = new URL("./RESULTS.md", import.meta.url).pathname;

/** Number of logical cores, as the OS reports them. */
export function coreCount(): number {
  return navigator.hardwareConcurrency;
}

/** Appends a dated section to bench/RESULTS.md (created with a heading when missing). */
export async function appendResults(title: string, lines: readonly string[]): Promise<void> {
  let existing = "";
  try {
    existing = await Deno.readTextFile(RESULTS_PATH);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    existing =
      "# Benchmark results\n\nEach section is one run of one benchmark, appended by the script itself.\n";
  }
  const stamp = new Date().toISOString();
  const section = [
    "",
    `## ${title}`,
    "",
    `Run ${stamp} on ${coreCount()} cores, Deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch}.`,
    "",
    ...lines,
    "",
  ].join("\n");
  await Deno.writeTextFile(RESULTS_PATH, existing.trimEnd() + "\n" + section);
}

/** Formats a number with thousands separators. */
export function formatNumber(value: number, digits = 0): string {
  return value.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

/** The p-th percentile (0..100) of `values` (sorted copy). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}
