// SPEC.md section 10, configuration: flags, then FERRY_* variables, then defaults; bad values stop
// the start with a message naming the setting and the value.

import assert from "node:assert/strict";
import { envName, parseConfig, primaryUrlList, settingsHelp } from "../../src/core/config.ts";
import { ConfigError } from "../../src/core/errors.ts";

const noEnv = () => undefined;

Deno.test("parseConfig() gives a primary the SPEC.md defaults", () => {
  const config = parseConfig("primary", [], noEnv);
  assert.equal(config.dataDir, "./data");
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.port, 8787);
  assert.equal(config.segmentBytesMax, 64 * 1024 * 1024);
  assert.equal(config.slotLagMaxRecords, 100_000);
  assert.equal(config.slotIdleTimeoutMs, 86_400_000);
  assert.equal(config.commitPolicy, "local");
  assert.equal(config.commitTimeoutMs, 5000);
  assert.equal(config.advertiseUrl, "http://127.0.0.1:8787");
  assert.ok(Object.isFrozen(config));
});

Deno.test("parseConfig() takes flags over FERRY_* variables over defaults", () => {
  const env = (name: string) =>
    ({ FERRY_PORT: "9000", FERRY_REGION: "eu" } as Record<string, string>)[name];
  const config = parseConfig("primary", ["--port", "9100", "--data-dir=/srv/ferry"], env);
  assert.equal(config.port, 9100);
  assert.equal(config.region, "eu");
  assert.equal(config.dataDir, "/srv/ferry");
});

Deno.test("parseConfig() reads byte sizes with units and booleans in both forms", () => {
  const config = parseConfig(
    "primary",
    ["--segment-bytes-max", "8MiB", "--fail-on-commit-timeout"],
    noEnv,
  );
  assert.equal(config.segmentBytesMax, 8 * 1024 * 1024);
  assert.equal(config.failOnCommitTimeout, true);
  const off = parseConfig("primary", ["--fail-on-commit-timeout", "false"], noEnv);
  assert.equal(off.failOnCommitTimeout, false);
});

Deno.test("parseConfig() names the setting and the value it refuses", () => {
  for (
    const args of [["--port", "abc"], ["--port", "70000"], ["--segment-bytes-max", "1"], [
      "--nope",
      "1",
    ], ["--port"]]
  ) {
    assert.throws(() => parseConfig("primary", args, noEnv), ConfigError, args.join(" "));
  }
  assert.throws(
    () => parseConfig("primary", [], (name) => name === "FERRY_PORT" ? "-1" : undefined),
    (error: Error) => error.message.includes("FERRY_PORT") && error.message.includes('"-1"'),
  );
});

Deno.test("parseConfig() requires a replica's primary URL and id", () => {
  assert.throws(() => parseConfig("replica", [], noEnv), ConfigError);
  const config = parseConfig("replica", [
    "--primary-url",
    "http://127.0.0.1:8787",
    "--replica-id",
    "r1",
  ], noEnv);
  assert.equal(config.port, 8788);
  assert.equal(config.dataDir, "./replica-data");
  assert.throws(
    () => parseConfig("replica", ["--primary-url", "nope", "--replica-id", "r1"], noEnv),
    ConfigError,
  );
});

Deno.test("envName() maps a flag to its FERRY_* variable", () => {
  assert.equal(envName("data-dir"), "FERRY_DATA_DIR");
});

Deno.test("settingsHelp() lists only the settings of the role asked for", () => {
  const primary = settingsHelp("primary");
  const replica = settingsHelp("replica");
  assert.match(primary, /--segment-bytes-max/);
  assert.doesNotMatch(primary, /--primary-url|--replica-id|--replica-token|--primary-ca/);
  assert.match(replica, /--primary-url/);
  assert.match(replica, /--replica-id/);
  assert.doesNotMatch(replica, /--commit-policy|--record-bytes-max|--term /);
  // A replica that keeps its log (a relay) takes the log's settings, and the help says when.
  assert.match(replica, /--segment-bytes-max .*\[with --keep-wal or --serve-wal\]/);
  for (const shared of ["--data-dir", "--port", "--tokens-file", "--tls-cert"]) {
    assert.match(primary, new RegExp(shared));
    assert.match(replica, new RegExp(shared));
  }
});

Deno.test("parseConfig() refuses the other role's setting, naming the role it belongs to", () => {
  assert.throws(
    () => parseConfig("primary", ["--replica-id", "r1"], noEnv),
    (error: unknown) =>
      error instanceof ConfigError && /--replica-id is a replica setting/.test(error.message),
  );
  assert.throws(
    () =>
      parseConfig("replica", [
        "--primary-url",
        "http://127.0.0.1:8787",
        "--replica-id",
        "r1",
        "--commit-policy",
        "quorum",
      ], noEnv),
    (error: unknown) =>
      error instanceof ConfigError && /--commit-policy is a primary setting/.test(error.message),
  );
});

Deno.test("parseConfig(): --serve-wal implies --keep-wal, and a relay takes a primary's log settings", () => {
  const base = ["--primary-url", "http://127.0.0.1:8787", "--replica-id", "relay-1"];
  const relay = parseConfig(
    "replica",
    [...base, "--serve-wal", "--slot-lag-max-records", "5"],
    noEnv,
  );
  assert.equal(relay.serveWal, true);
  assert.equal(relay.keepWal, true);
  assert.equal(relay.slotLagMaxRecords, 5);
  const keeper = parseConfig(
    "replica",
    [...base, "--keep-wal", "--segment-bytes-max", "1MiB"],
    noEnv,
  );
  assert.deepEqual([keeper.keepWal, keeper.serveWal, keeper.segmentBytesMax], [
    true,
    false,
    1 << 20,
  ]);
  const plain = parseConfig("replica", base, noEnv);
  assert.deepEqual([plain.keepWal, plain.serveWal], [false, false]);
});

Deno.test("parseConfig(): a replica that keeps no log refuses a primary's log settings as flags", () => {
  const base = ["--primary-url", "http://127.0.0.1:8787", "--replica-id", "r1"];
  assert.throws(
    () => parseConfig("replica", [...base, "--slot-lag-max-records", "5"], noEnv),
    (error: unknown) =>
      error instanceof ConfigError &&
      /--slot-lag-max-records applies to a replica only with --keep-wal/
        .test(error.message),
  );
  // A primary's own settings (its writes) stay the primary's.
  assert.throws(
    () => parseConfig("replica", [...base, "--serve-wal", "--commit-policy", "local"], noEnv),
    ConfigError,
  );
  assert.match(settingsHelp("replica"), /--serve-wal/);
});

Deno.test("--primary-url takes a cluster's node list for an edge, one URL for a relay", () => {
  const list = "http://127.0.0.1:8781, http://127.0.0.1:8782,http://127.0.0.1:8783";
  const edge = parseConfig("replica", ["--primary-url", list, "--replica-id", "e1"], noEnv);
  assert.deepEqual(primaryUrlList(edge), [
    "http://127.0.0.1:8781",
    "http://127.0.0.1:8782",
    "http://127.0.0.1:8783",
  ]);
  assert.throws(
    () => parseConfig("replica", ["--primary-url", `${list},nope`, "--replica-id", "e1"], noEnv),
    (error: unknown) => error instanceof ConfigError && /--primary-url.*"nope"/.test(error.message),
  );
  assert.throws(
    () => parseConfig("replica", ["--primary-url", list, "--replica-id", "r", "--keep-wal"], noEnv),
    (error: unknown) => error instanceof ConfigError && /follows one upstream/.test(error.message),
  );
});
