// `deno task compile` (SPEC.md 10): one binary with the scoped permissions baked in. Compiling
// needs a denort runtime, which this project's build machines cannot download; the test runs where
// DENORT_BIN points to one, and is reported as skipped (with the reason) elsewhere.

import assert from "node:assert/strict";
import { freePort, ROOT } from "../helpers/process.ts";
import { withTempDir } from "../helpers/temp.ts";

const denort = Deno.env.get("DENORT_BIN");

/** The compile task's argv (after `deno`), output and port swapped for the test's. */
function compileArgs(output: string, dataDir: string, port: number): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<
    string,
    string
  >;
  const argv = tasks.compile!.trim().split(/\s+/);
  assert.ok(!argv.includes("-A"), "never -A");
  return argv.slice(1).map((arg) =>
    arg.replace("=./data", `=${dataDir}`).replace("127.0.0.1:8787", `127.0.0.1:${port}`)
      .replace("dist/ferry", output)
  );
}

Deno.test({
  name: denort
    ? "the compiled binary serves with its baked-in scoped permissions"
    : "the compiled binary serves with its baked-in scoped permissions (skipped: DENORT_BIN is not set, and denort cannot be downloaded here)",
  ignore: !denort,
  fn: async () => {
    await withTempDir(async (dir) => {
      const port = freePort();
      const binary = `${dir}/ferry`;
      const compiled = await new Deno.Command(Deno.execPath(), {
        args: compileArgs(binary, `${dir}/data`, port),
        cwd: ROOT,
        env: { DENORT_BIN: denort! },
      }).output();
      assert.equal(compiled.code, 0, new TextDecoder().decode(compiled.stderr));
      const child = new Deno.Command(binary, {
        args: ["primary", "--data-dir", `${dir}/data`, "--port", String(port)],
        stderr: "piped",
        stdout: "null",
      }).spawn();
      try {
        for (let i = 0; i < 100; i++) {
          const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok).catch(() =>
            false
          );
          if (ok) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const response = await fetch(`http://127.0.0.1:${port}/v1/records`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ records: [{ op: "put", collection: "c", key: "k", value: 1 }] }),
        });
        assert.equal((await response.json()).last_lsn, 1);
      } finally {
        child.kill("SIGTERM");
        assert.equal((await child.status).code, 0);
        await child.stderr.cancel();
      }
    });
  },
});
