/** Real ferry processes for end-to-end tests: the task command lines, free ports, log following. */

import assert from "node:assert/strict";

export const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * Runs `program` and says whether it exited 0, its output discarded unless `options` say otherwise;
 * false, not an error, when the program is not installed (tests that need it skip, saying so).
 */
export async function programSucceeds(
  program: string,
  options: Deno.CommandOptions = {},
): Promise<boolean> {
  try {
    const command = new Deno.Command(program, { stdout: "null", stderr: "null", ...options });
    return (await command.output()).success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** The start task's argv (after `deno`), with the data dir and port replaced. */
export function startTaskArgs(dataDir: string, port: number): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<
    string,
    string
  >;
  const argv = tasks.start!.trim().split(/\s+/);
  assert.equal(argv[0], "deno");
  assert.ok(!argv.includes("-A") && !argv.some((a) => a === "--allow-all"), "never -A");
  for (
    const flag of [
      "--allow-read=./data,./src",
      "--allow-write=./data",
      "--allow-net=127.0.0.1:8787",
    ]
  ) {
    assert.ok(argv.includes(flag), `the start task grants ${flag}`);
  }
  return argv.slice(1).map((arg) =>
    arg.replace("=./data", `=${dataDir}`).replace("127.0.0.1:8787", `127.0.0.1:${port}`)
  ).concat(["--data-dir", dataDir, "--port", String(port)]);
}

/** Below Linux's ephemeral range (32768-60999): an outgoing connection never takes these. */
const TEST_PORT_MIN = 20_000;
const TEST_PORT_SPAN = 12_000;

/**
 * Where `freePort` claims a port, one empty file per port. `deno test --parallel` runs test modules
 * in one process but in separate isolates that share no memory, so a claim must live outside them
 * (and outside the process: benches and a second suite pick ports from the same range).
 */
function _portClaimDir(): string {
  // Read when a port is picked, not at load: load peers import this module without env access.
  return `${Deno.env.get("TMPDIR") ?? "/tmp"}/ferry-test-ports`;
}
/**
 * A claim older than this is stale: the port may be handed out again. A claim only has to last
 * from the pick to the child's bind (then the bind itself keeps others off), or to a restart on
 * the same port; short enough that suites run back to back cannot claim the whole range.
 */
const PORT_CLAIM_STALE_MS = 2 * 60_000;
/** Random picks `freePort` tries before it says the range is used up (instead of spinning). */
const PORT_PICKS_MAX = 10 * TEST_PORT_SPAN;
/** Starts on a port another process took between the pick and the bind, before giving up. */
const PORT_ATTEMPTS = 5;

/** Claims `port` for this caller: false when a claim younger than PORT_CLAIM_STALE_MS holds it. */
function _claimPort(port: number): boolean {
  const path = `${_portClaimDir()}/${port}`;
  try {
    Deno.writeFileSync(path, new Uint8Array(), { createNew: true });
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      Deno.mkdirSync(_portClaimDir(), { recursive: true });
      return _claimPort(port);
    }
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const claimedAt = Deno.statSync(path).mtime?.getTime() ?? 0;
  if (Date.now() - claimedAt < PORT_CLAIM_STALE_MS) return false;
  Deno.writeFileSync(path, new Uint8Array()); // takes the stale claim over and renews its time
  return true;
}

/**
 * A port nobody listens on right now and nobody claimed lately, picked below the ephemeral range:
 * a port the kernel handed out for `port: 0` can be taken by any outgoing connection before the
 * child process binds it. A program that does not use `freePort` may still take it before the
 * child binds it: `startOnFreePort` retries.
 */
export function freePort(): number {
  for (let pick = 0; pick < PORT_PICKS_MAX; pick++) {
    const port = TEST_PORT_MIN + Math.floor(Math.random() * TEST_PORT_SPAN);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
      continue;
    }
    if (_claimPort(port)) return port;
  }
  throw new Error(
    `no free, unclaimed port in ${TEST_PORT_MIN}..${TEST_PORT_MIN + TEST_PORT_SPAN - 1} after ` +
      `${PORT_PICKS_MAX} picks (claims in ${_portClaimDir()} last ${PORT_CLAIM_STALE_MS} ms)`,
  );
}

/**
 * Starts `deno <argsFor(port)>` on a `freePort` and waits for "ferry.started"; when the process
 * could not listen because another one took the port meanwhile (`port_in_use`), on another port.
 */
export async function startOnFreePort(
  argsFor: (port: number) => string[],
  env: Record<string, string> = {},
): Promise<{ process: RunningProcess; port: number; args: string[] }> {
  for (let attempt = 1;; attempt++) {
    const port = freePort();
    const args = argsFor(port);
    const process = startProcess(args, env);
    try {
      await process.waitFor("ferry.started");
      return { process, port, args };
    } catch (error) {
      const taken = process.lines.some((line) => line.includes('"code":"port_in_use"'));
      if (!taken || attempt >= PORT_ATTEMPTS) throw error;
    }
  }
}

/** A running ferry process and its log lines. */
export interface RunningProcess {
  child: Deno.ChildProcess;
  lines: string[];
  /** Resolves with the first log line whose event is `event`. */
  waitFor(event: string): Promise<Record<string, unknown>>;
  stderrDone: Promise<void>;
}

/** Starts `deno <args>` in the project root and follows its structured log on stderr. */
export function startProcess(args: string[], env: Record<string, string> = {}): RunningProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
  const lines: string[] = [];
  const listeners: Array<() => void> = [];
  const stderrDone = (async () => {
    let pending = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop()!;
      lines.push(...parts);
      for (const listener of listeners.splice(0)) listener();
    }
    for (const listener of listeners.splice(0)) listener();
  })();
  child.stdout.cancel();
  const waitFor = async (event: string) => {
    for (;;) {
      const line = lines.map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return undefined;
        }
      }).find((l) => l?.event === event);
      if (line) return line;
      const status = await Promise.race([
        new Promise<"line">((resolve) => listeners.push(() => resolve("line"))),
        child.status.then(() => "exited" as const),
      ]);
      if (status === "exited" && !lines.some((l) => l.includes(`"${event}"`))) {
        throw new Error(`process exited before ${event}:\n${lines.join("\n")}`);
      }
    }
  };
  return { child, lines, waitFor, stderrDone };
}

/** The replica task's argv (after `deno`), with its data dir, port, primary and id replaced. */
export function replicaTaskArgs(
  options: {
    dataDir: string;
    port: number;
    primaryPort: number;
    replicaId: string;
    region?: string;
  },
): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<
    string,
    string
  >;
  const argv = tasks.replica!.trim().split(/\s+/);
  assert.ok(!argv.includes("-A"), "never -A");
  const swapped = argv.slice(1).map((arg) =>
    arg.replace("=./replica-data", `=${options.dataDir}`)
      .replace("127.0.0.1:8788", `127.0.0.1:${options.port}`)
      .replace("127.0.0.1:8787", `127.0.0.1:${options.primaryPort}`)
      .replace("replica-1", options.replicaId)
  );
  swapped.push("--data-dir", options.dataDir, "--port", String(options.port));
  if (options.region) swapped.push("--region", options.region);
  return swapped;
}

/** Polls `check` until it returns a value (not undefined/false) or `timeoutMs` passes. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Runs `deno <args>`, collects its stdout lines, and sends SIGKILL as soon as `killWhen(lines)` is
 * true; then drains the pipe. Returns every complete line (a partial last line was never a whole
 * report). Fails unless the child was still running when killed.
 */
export async function runUntilKilled(
  args: string[],
  killWhen: (lines: readonly string[]) => boolean,
): Promise<string[]> {
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" })
    .spawn();
  const lines: string[] = [];
  let pending = "";
  let killed = false;
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    pending += decoder.decode(chunk, { stream: true });
    const parts = pending.split("\n");
    pending = parts.pop()!;
    lines.push(...parts);
    if (!killed && killWhen(lines)) {
      child.kill("SIGKILL");
      killed = true;
    }
  }
  const status = await child.status;
  assert.ok(killed, "the child was still running when killed");
  assert.equal(status.signal, "SIGKILL");
  return lines;
}

/** Ends `process` with `signal` unless it has exited already, and waits for it and its log. */
export async function killProcess(
  process: RunningProcess,
  signal: Deno.Signal = "SIGKILL",
): Promise<Deno.CommandStatus> {
  try {
    process.child.kill(signal);
  } catch {
    // Already gone: nothing to end.
  }
  const status = await process.child.status;
  await process.stderrDone;
  return status;
}
