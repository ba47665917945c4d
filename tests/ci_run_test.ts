// `.ci/run` runs under `set -euo pipefail`: a pipe whose reader stops early (`| head`) kills a
// writer that prints more with SIGPIPE, and pipefail then fails the whole run (exit 141, seen in
// CI from `etcd --version | head -n 1`). Its version lines go through `first_line`, which reads all.

import assert from "node:assert/strict";

const CI_RUN = new URL("../.ci/run", import.meta.url).pathname;

Deno.test(".ci/run pipes nothing into head, and its first_line survives a tool that prints more later", async () => {
  const script = await Deno.readTextFile(CI_RUN);
  assert.match(script, /^set -euo pipefail$/m);
  const commands = script.split("\n").filter((line) => !line.trimStart().startsWith("#"));
  assert.deepEqual(commands.filter((line) => /\|\s*head\b/.test(line)), [], "no pipe into head");
  const definition = script.split("\n").find((line) => line.startsWith("first_line()"));
  assert.ok(definition, "first_line is defined");
  // A tool that prints its first line, then more after the reader could have gone.
  const tool = `sh -c 'echo first; sleep 0.2; echo second; echo third'`;
  const output = await new Deno.Command("bash", {
    args: ["-c", `set -euo pipefail\n${definition}\nfirst_line ${tool}\necho finished`],
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.equal(stdout, "first\nfinished\n");
});
