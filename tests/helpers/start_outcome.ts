/** How a ferry process that should not start ends: its exit code and its log. */

import { ROOT } from "./process.ts";

/** What a process printed and how it ended. */
export interface StartOutcome {
  /** The exit code, or undefined when it was still running at the deadline (then killed). */
  code: number | undefined;
  stderr: string;
  /** The structured log lines (stderr lines that parse as JSON objects). */
  log: Array<Record<string, unknown>>;
}

/**
 * Runs `deno <args>` in the project root until it exits, or kills it at `deadlineMs` (a process
 * that starts instead of refusing would otherwise run forever).
 */
export async function runUntilExit(args: string[], deadlineMs = 60_000): Promise<StartOutcome> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, deadlineMs);
  const output = await child.output();
  clearTimeout(timer);
  const stderr = new TextDecoder().decode(output.stderr);
  return { code: timedOut ? undefined : output.code, stderr, log: parseLog(stderr) };
}

/** The JSON object lines of a log. */
export function parseLog(text: string): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  for (const line of text.split("\n")) {
    try {
      const parsed = JSON.parse(line);
      if (parsed && typeof parsed === "object") lines.push(parsed);
    } catch {
      // not a log line (the permission message, a stack trace)
    }
  }
  return lines;
}

/** Lines of a stack trace ("    at f (file:line)"). */
export function stackLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => /^\s+at /.test(line));
}
