/**
 * The benchmarks' command-line options: quick mode, and options written `--name=value`. A value
 * that is not a number where one is due is an error, not a NaN carried into a run.
 *
 * @module
 */

/** Quick mode (`--quick` or FERRY_BENCH_QUICK=1): small sizes, to check that a script works. */
export function quickMode(args: readonly string[] = Deno.args): boolean {
  return args.includes("--quick") || Deno.env.get("FERRY_BENCH_QUICK") === "1";
}

/** The text of `--name=value` in `args`; undefined when absent. */
export function stringOption(
  name: string,
  args: readonly string[] = Deno.args,
): string | undefined {
  const prefix = `--${name}=`;
  return args.find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}

/** The number of `--name=N` in `args`; `fallback` when absent. */
export function numberOption(
  name: string,
  fallback: number,
  args: readonly string[] = Deno.args,
): number {
  const text = stringOption(name, args);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) {
    throw new Error(`--${name} takes a number, not "${text}"`);
  }
  return value;
}

/** The arguments that are not options. */
export function positionalArgs(args: readonly string[] = Deno.args): string[] {
  return args.filter((arg) => !arg.startsWith("--"));
}
