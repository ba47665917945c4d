// The start-up failures a newcomer hits (a port in use, a data directory that cannot be created,
// is read-only, or is a file), each run as a real process with the start task's scoped permissions:
// exit code 2, exactly one `ferry.start_failed` line naming the flag to change, no stack trace.

import assert from "node:assert/strict";
import {
  freePort,
  killProcess,
  programSucceeds,
  replicaTaskArgs,
  startOnFreePort,
  startTaskArgs,
} from "../helpers/process.ts";
import { runUntilExit, stackLines, type StartOutcome } from "../helpers/start_outcome.ts";
import { withTempDir } from "../helpers/temp.ts";

function assertStartFailed(outcome: StartOutcome, flag: string): Record<string, unknown> {
  const failed = outcome.log.filter((line) => line.event === "ferry.start_failed");
  assert.equal(failed.length, 1, `one ferry.start_failed line:\n${outcome.stderr}`);
  const line = failed[0]!;
  assert.ok(String(line.message).includes(flag), `the line names ${flag}: ${line.message}`);
  assert.equal(line.flag, flag);
  assert.deepEqual(stackLines(outcome.stderr), [], `no stack trace:\n${outcome.stderr}`);
  assert.equal(outcome.code, 2, `exit code 2:\n${outcome.stderr}`);
  return line;
}

/**
 * Makes `dir` refuse new entries, even to root (which ignores modes): `chattr +i` as root, a mode
 * without write elsewhere. Returns the undo, or undefined when this system offers neither.
 */
async function makeReadOnly(dir: string): Promise<(() => Promise<void>) | undefined> {
  if (Deno.uid() !== 0) {
    await Deno.chmod(dir, 0o555);
    return () => Deno.chmod(dir, 0o755);
  }
  const chattr = (flag: string) => programSucceeds("chattr", { args: [flag, dir] });
  if (!(await chattr("+i"))) return undefined;
  return async () => void (await chattr("-i"));
}

/** Runs `fn` with `dir` read-only; skips (saying why) where that cannot be arranged. */
async function withReadOnly(dir: string, fn: () => Promise<void>): Promise<void> {
  const undo = await makeReadOnly(dir);
  if (!undo) {
    console.warn("skipped: running as root without chattr, a read-only directory cannot be made");
    return;
  }
  try {
    await fn();
  } finally {
    await undo();
  }
}

Deno.test("a port in use: exit 2, one ferry.start_failed naming --port, no stack trace", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const taken = Deno.listen({ hostname: "127.0.0.1", port });
    try {
      const outcome = await runUntilExit(startTaskArgs(`${dir}/data`, port));
      const line = assertStartFailed(outcome, "--port");
      assert.equal(line.code, "port_in_use");
      assert.ok(String(line.message).includes(`127.0.0.1:${port}`));
    } finally {
      taken.close();
    }
  });
});

Deno.test("startOnFreePort starts again on another port when the one picked was taken before the bind", async () => {
  await withTempDir(async (dir) => {
    const takenPort = freePort();
    const taken = Deno.listen({ hostname: "127.0.0.1", port: takenPort });
    const tried: number[] = [];
    try {
      // The first start is sent to the taken port, as when another process binds it first.
      const started = await startOnFreePort((port) => {
        tried.push(tried.length === 0 ? takenPort : port);
        return startTaskArgs(`${dir}/data`, tried.at(-1)!);
      });
      assert.deepEqual(tried.length, 2, "one more start after port_in_use");
      assert.equal(started.port, tried[1]);
      await killProcess(started.process, "SIGTERM");
    } finally {
      taken.close();
    }
  });
});

Deno.test("freePort never hands out a port that another process or test module claimed lately", async () => {
  // Without claims shared through the file system, 300 + 300 random picks from the test range
  // would share a port in all but 0.1 % of runs (about 7 expected).
  const picks = 300;
  const helper = new URL("../helpers/process.ts", import.meta.url).href;
  const script = `import { freePort } from "${helper}";
    console.log(JSON.stringify(Array.from({ length: ${picks} }, () => freePort())));`;
  const other = await new Deno.Command(Deno.execPath(), { args: ["eval", script] }).output();
  assert.ok(other.success, new TextDecoder().decode(other.stderr));
  const theirs = new Set(JSON.parse(new TextDecoder().decode(other.stdout)) as number[]);
  const ours = Array.from({ length: picks }, () => freePort());
  assert.equal(theirs.size, picks, "distinct within one process");
  assert.equal(new Set(ours).size, picks, "distinct within this module");
  assert.deepEqual(ours.filter((port) => theirs.has(port)), [], "none handed to both");
});

Deno.test("a replica on a port in use: exit 2, one ferry.start_failed naming --port", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const taken = Deno.listen({ hostname: "127.0.0.1", port });
    try {
      const args = replicaTaskArgs({
        dataDir: `${dir}/replica`,
        port,
        primaryPort: freePort(),
        replicaId: "edge-1",
      });
      assertStartFailed(await runUntilExit(args), "--port");
    } finally {
      taken.close();
    }
  });
});

Deno.test("a data directory that is a file: exit 2, one ferry.start_failed naming --data-dir", async () => {
  await withTempDir(async (dir) => {
    const dataDir = `${dir}/data`;
    await Deno.writeTextFile(dataDir, "not a directory\n");
    const line = assertStartFailed(
      await runUntilExit(startTaskArgs(dataDir, freePort())),
      "--data-dir",
    );
    assert.match(String(line.message), /is a file/);
    assert.equal(await Deno.readTextFile(dataDir), "not a directory\n", "the file is untouched");
  });
});

Deno.test("a missing data directory under a file: exit 2, one ferry.start_failed naming --data-dir", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    const dataDir = `${dir}/file/data`;
    const line = assertStartFailed(
      await runUntilExit(startTaskArgs(dataDir, freePort())),
      "--data-dir",
    );
    assert.match(String(line.message), /cannot be created/);
  });
});

Deno.test("a missing data directory in a read-only parent: exit 2, one ferry.start_failed naming --data-dir", async () => {
  await withTempDir(async (dir) => {
    const parent = `${dir}/parent`;
    await Deno.mkdir(parent);
    await withReadOnly(parent, async () => {
      const outcome = await runUntilExit(startTaskArgs(`${parent}/data`, freePort()));
      const line = assertStartFailed(outcome, "--data-dir");
      assert.match(String(line.message), /cannot be created/);
    });
  });
});

Deno.test("a read-only data directory: exit 2, one ferry.start_failed naming --data-dir", async () => {
  await withTempDir(async (dir) => {
    const dataDir = `${dir}/data`;
    await Deno.mkdir(dataDir);
    await withReadOnly(dataDir, async () => {
      const outcome = await runUntilExit(startTaskArgs(dataDir, freePort()));
      const line = assertStartFailed(outcome, "--data-dir");
      assert.match(String(line.message), /not writable/);
    });
    assert.deepEqual([...Deno.readDirSync(dataDir)], [], "nothing was written");
  });
});

/** `args` with read access also granted to `dir`. */
function grantRead(args: string[], dir: string): string[] {
  return args.map((arg) => arg.startsWith("--allow-read=") ? `${arg},${dir}` : arg);
}

Deno.test("a missing tokens file: exit 2, one ferry.start_failed naming --tokens-file", async () => {
  await withTempDir(async (dir) => {
    const args = grantRead(
      [...startTaskArgs(`${dir}/data`, freePort()), "--tokens-file", `${dir}/etc/tokens.json`],
      `${dir}/etc`,
    );
    const line = assertStartFailed(await runUntilExit(args), "--tokens-file");
    assert.match(String(line.message), /cannot be read/);
  });
});

Deno.test("a TLS certificate that is not PEM: exit 2, one ferry.start_failed naming --tls-cert", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/etc`);
    await Deno.writeTextFile(`${dir}/etc/cert.pem`, "garbage");
    await Deno.writeTextFile(`${dir}/etc/key.pem`, "garbage");
    const args = grantRead([
      ...startTaskArgs(`${dir}/data`, freePort()),
      ...["--tls-cert", `${dir}/etc/cert.pem`, "--tls-key", `${dir}/etc/key.pem`],
    ], `${dir}/etc`);
    const line = assertStartFailed(await runUntilExit(args), "--tls-cert");
    assert.match(String(line.message), /not a PEM file/);
  });
});
