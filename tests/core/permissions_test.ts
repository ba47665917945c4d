// SPEC.md 10 and 13.6, the permission preflight: besides the data directory and the listen address,
// ferry needs read access to every file it reads at start and again on SIGHUP (tokens, TLS
// certificate and key, the primary's CA bundle), and asks for exactly the flags that grant them.

import assert from "node:assert/strict";
import { parseConfig } from "../../src/core/config.ts";
import { neededPermissions } from "../../src/core/permissions.ts";

const noEnv = () => undefined;

function readFlags(args: string[], role: "primary" | "replica" = "primary"): string[] {
  return neededPermissions(parseConfig(role, args, noEnv))
    .filter(({ descriptor }) => descriptor.name === "read")
    .map(({ flag }) => flag);
}

Deno.test("neededPermissions() asks read access to the TLS certificate and key", () => {
  const flags = readFlags(["--tls-cert", "/etc/ferry/cert.pem", "--tls-key", "/etc/ferry/key.pem"]);
  assert.ok(flags.includes("--allow-read=/etc/ferry/cert.pem"), flags.join(" "));
  assert.ok(flags.includes("--allow-read=/etc/ferry/key.pem"), flags.join(" "));
});

Deno.test("neededPermissions() asks a replica read access to its primary's CA bundle", () => {
  const flags = readFlags([
    "--primary-url",
    "https://primary.example:8787",
    "--replica-id",
    "edge-1",
    "--primary-ca",
    "/etc/ferry/ca.pem",
  ], "replica");
  assert.ok(flags.includes("--allow-read=/etc/ferry/ca.pem"), flags.join(" "));
});

Deno.test("neededPermissions() asks nothing for TLS files that are not set", () => {
  assert.deepEqual(readFlags([]), ["--allow-read=./data"]);
});
