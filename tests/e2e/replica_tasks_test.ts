// README's second and third replica (`deno task replica-2`, `deno task replica-3`): each task works
// as written. Its permissions grant exactly its own data directory and port plus the primary, and
// started (on ports the test picks) it follows the primary.

import assert from "node:assert/strict";
import { startPrimary, stop, waitApplied, write } from "../helpers/cluster.ts";
import { freePort, ROOT, startProcess } from "../helpers/process.ts";
import { withTempDir } from "../helpers/temp.ts";

const TASKS = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<
  string,
  string
>;

/** A flag's value in a task's argv (`--name=value` or `--name value`). */
function flagOf(argv: readonly string[], name: string): string | undefined {
  const inline = argv.find((arg) => arg.startsWith(`--${name}=`));
  if (inline) return inline.slice(name.length + 3);
  const index = argv.indexOf(`--${name}`);
  return index >= 0 ? argv[index + 1] : undefined;
}

for (const task of ["replica", "replica-2", "replica-3"]) {
  Deno.test(`deno task ${task} grants exactly its data directory, its port and the primary`, () => {
    const argv = TASKS[task]!.trim().split(/\s+/);
    assert.ok(!argv.includes("-A"), "never -A");
    const dataDir = flagOf(argv, "data-dir") ?? "./replica-data";
    const port = flagOf(argv, "port") ?? "8788";
    assert.equal(flagOf(argv, "allow-read"), dataDir);
    assert.equal(flagOf(argv, "allow-write"), dataDir);
    const primary = new URL(flagOf(argv, "primary-url")!);
    assert.deepEqual(
      flagOf(argv, "allow-net")!.split(",").sort(),
      [`127.0.0.1:${port}`, primary.host].sort(),
    );
  });
}

Deno.test("deno task replica-2 and replica-3, as written (ports and paths swapped), follow the primary", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/p`);
    const replicas: Array<{ base: string; process: ReturnType<typeof startProcess> }> = [];
    try {
      for (const task of ["replica-2", "replica-3"]) {
        const argv = TASKS[task]!.trim().split(/\s+/);
        const port = freePort();
        const dataDir = `${dir}/${task}`;
        const args = argv.slice(1).map((arg) =>
          arg.replaceAll(flagOf(argv, "data-dir")!, dataDir)
            .replaceAll(`127.0.0.1:${flagOf(argv, "port")}`, `127.0.0.1:${port}`)
            .replace(/^8789$|^8790$/, String(port))
            .replaceAll("127.0.0.1:8787", `127.0.0.1:${primary.port}`)
        );
        const process = startProcess(args);
        await process.waitFor("ferry.started");
        replicas.push({ base: `http://127.0.0.1:${port}`, process });
      }
      const written = await write(primary.base, [{
        op: "put",
        collection: "c",
        key: "k",
        value: 1,
      }]);
      for (const replica of replicas) {
        await waitApplied(replica.base, written.body.last_lsn as number);
      }
    } finally {
      for (const replica of replicas) {
        replica.process.child.kill("SIGTERM");
        assert.equal((await replica.process.child.status).code, 0);
        await replica.process.stderrDone;
      }
      await stop(primary);
    }
  });
});
