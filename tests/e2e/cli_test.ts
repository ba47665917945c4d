// SPEC.md 13.5, the operator's command line, through a real primary: `token` makes a token whose
// printed tokens-file entry works as printed; `status`, `slots` and `drop-slot` read and act with
// it, as tables or `--json`.

import assert from "node:assert/strict";
import { startPrimary, stop } from "../helpers/cluster.ts";
import { ROOT } from "../helpers/process.ts";
import { withTempDir } from "../helpers/temp.ts";

const TASKS = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<
  string,
  string
>;

/** Runs `deno task cli <args>` as written, its port swapped for the test's. */
async function cli(port: number, args: string[]): Promise<{ code: number; out: string }> {
  const argv = TASKS.cli!.trim().split(/\s+/).slice(1)
    .map((arg) => arg.replace("127.0.0.1:8787", `127.0.0.1:${port}`));
  const output = await new Deno.Command(Deno.execPath(), {
    args: [...argv, ...args, "--url", `http://127.0.0.1:${port}`],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    out: decoder.decode(output.stdout) + decoder.decode(output.stderr),
  };
}

Deno.test("main.ts token prints an entry that works as a tokens-file entry; status, slots and drop-slot use it", async () => {
  await withTempDir(async (dir) => {
    const made = await cli(0, ["token", "admin"]);
    assert.equal(made.code, 0, made.out);
    const token = /^token: (\S+)$/m.exec(made.out)![1]!;
    const entry = JSON.parse(
      /^tokens-file entry \(add it to "tokens"\): (.*)$/m.exec(made.out)![1]!,
    );
    // Inside the data directory: the start task grants reading it.
    await Deno.mkdir(`${dir}/p`);
    await Deno.writeTextFile(`${dir}/p/tokens.json`, JSON.stringify({ tokens: [entry] }));
    const primary = await startPrimary(`${dir}/p`, ["--tokens-file", `${dir}/p/tokens.json`]);
    try {
      const register = await fetch(`${primary.base}/v1/replicas/edge-1`, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: '{"region":"eu"}',
      });
      assert.equal(register.status, 200, "the printed token works");
      await register.body?.cancel();

      const status = await cli(primary.port, ["status", "--token", token]);
      assert.equal(status.code, 0, status.out);
      assert.match(status.out, /^primary {2}term 1 {2}timeline 1/m);
      assert.match(status.out, /^REPLICA +REGION +HEALTHY/m);
      assert.match(status.out, /^edge-1 +eu +yes/m);
      assert.match(status.out, /^SLOT +RESTART_LSN +RETAINED/m);

      const json = await cli(primary.port, ["status", "--token", token, "--json"]);
      assert.equal(JSON.parse(json.out).role, "primary");

      const slots = await cli(primary.port, ["slots", "--token", token]);
      assert.match(slots.out, /^edge-1 +0 +/m);
      assert.equal((await cli(primary.port, ["drop-slot", "edge-1", "--token", token])).code, 0);
      const none = await cli(primary.port, ["slots", "--token", token, "--json"]);
      assert.deepEqual(JSON.parse(none.out), { slots: [] });
      const again = await cli(primary.port, ["drop-slot", "edge-1", "--token", token]);
      assert.equal(again.code, 1, "a slot that is not there");
      assert.match(again.out, /404 not_found/);
      const anonymous = await cli(primary.port, ["status"]);
      assert.equal(anonymous.code, 1);
      assert.match(anonymous.out, /401 unauthorized/);
    } finally {
      await stop(primary);
    }
  });
});

Deno.test("main.ts token refuses what a tokens file could not hold", async () => {
  const noId = await cli(0, ["token", "replica"]);
  assert.equal(noId.code, 2);
  assert.match(noId.out, /--replica-id/);
  const badRole = await cli(0, ["token", "root"]);
  assert.equal(badRole.code, 2);
  const json = await cli(0, ["token", "replica", "--replica-id", "edge-2", "--json"]);
  const printed = JSON.parse(json.out);
  assert.deepEqual(Object.keys(printed.entry).sort(), ["replica_id", "role", "sha256"]);
  assert.match(printed.entry.sha256, /^[0-9a-f]{64}$/);
});
