// SPEC.md 13.6 settings: `--tls-cert` and `--tls-key` go together, and with them the URL a primary
// advertises in topology is https.

import assert from "node:assert/strict";
import { parseConfig } from "../../src/core/config.ts";
import { ConfigError } from "../../src/core/errors.ts";

const noEnv = () => undefined;

Deno.test("parseConfig() refuses --tls-cert without --tls-key, and the reverse", () => {
  assert.throws(() => parseConfig("primary", ["--tls-cert", "c.pem"], noEnv), ConfigError);
  assert.throws(() => parseConfig("primary", ["--tls-key", "k.pem"], noEnv), ConfigError);
});

Deno.test("parseConfig() advertises an https URL when serving TLS", () => {
  const config = parseConfig("primary", ["--tls-cert", "c.pem", "--tls-key", "k.pem"], noEnv);
  assert.equal(config.advertiseUrl, "https://127.0.0.1:8787");
  assert.equal(parseConfig("primary", [], noEnv).advertiseUrl, "http://127.0.0.1:8787");
});
