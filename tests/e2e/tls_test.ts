// Transport security and reloads (SPEC.md 13.6 and 10) with real processes and the tasks' scoped
// permissions: a primary and a replica over HTTPS with a private CA (made with openssl here); SIGHUP
// reloading the tokens file and the TLS files without dropping a held request, keeping the last
// good files when new ones do not parse; and the start refusals beyond loopback.

import assert from "node:assert/strict";
import {
  freePort,
  killProcess,
  replicaTaskArgs,
  type RunningProcess,
  startProcess,
  startTaskArgs,
  waitUntil,
} from "../helpers/process.ts";
import { runUntilExit } from "../helpers/start_outcome.ts";
import { withTempDir } from "../helpers/temp.ts";
import { makeTestPki, opensslAvailable, trustingFetch } from "../helpers/tls.ts";
import { tokenHash } from "../helpers/tokens.ts";

const OPENSSL = await opensslAvailable();
if (!OPENSSL && Deno.env.get("FERRY_REQUIRE_OPENSSL") === "1") {
  throw new Error(
    "FERRY_REQUIRE_OPENSSL=1 but openssl is not installed: the TLS tests may not skip",
  );
}
const NEEDS_OPENSSL = OPENSSL
  ? ""
  : " (skipped: openssl is not installed, no certificate can be made)";

/** `args` with read access also granted to `dir` (tokens and PEM files live there). */
function grantRead(args: string[], dir: string): string[] {
  return args.map((arg) => arg.startsWith("--allow-read=") ? `${arg},${dir}` : arg);
}

/** `args` with the listen grant moved to `host:port`. */
function listenOn(args: string[], host: string, port: number): string[] {
  return args.map((arg) =>
    arg.startsWith("--allow-net=") ? arg.replace(`127.0.0.1:${port}`, `${host}:${port}`) : arg
  );
}

async function writeTokens(path: string, tokens: Record<string, string>): Promise<void> {
  const entries = Object.entries(tokens).map(([role, token]) =>
    role.startsWith("replica:")
      ? { sha256: tokenHash(token), role: "replica", replica_id: role.slice(8) }
      : { sha256: tokenHash(token), role }
  );
  await Deno.writeTextFile(path, JSON.stringify({ tokens: entries }));
}

/** SIGTERM, then the exit code 0 and `ferry.stopped`. */
async function stopCleanly(process: RunningProcess): Promise<void> {
  process.child.kill("SIGTERM");
  const status = await process.child.status;
  await process.stderrDone;
  assert.equal(status.code, 0, process.lines.slice(-10).join("\n"));
  assert.ok(process.lines.some((line) => line.includes('"ferry.stopped"')));
}

function count(process: RunningProcess, event: string): number {
  return process.lines.filter((line) => line.includes(`"event":"${event}"`)).length;
}

Deno.test({
  name: "HTTPS with a private CA: a write to the primary is read through the replica" +
    NEEDS_OPENSSL,
  ignore: !OPENSSL,
  fn: async () => {
    await withTempDir(async (dir) => {
      const pki = await makeTestPki(`${dir}/tls`, "one");
      const tokensFile = `${dir}/tls/tokens.json`;
      await writeTokens(tokensFile, { admin: "adm", writer: "wri", "replica:edge-1": "rep" });
      const tls = ["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey];
      const port = freePort();
      const primary = startProcess(grantRead(
        [...startTaskArgs(`${dir}/data`, port), ...tls, "--tokens-file", tokensFile],
        `${dir}/tls`,
      ));
      const trusted = trustingFetch(await Deno.readTextFile(pki.caCert));
      let replica: RunningProcess | undefined;
      try {
        assert.equal((await primary.waitFor("ferry.started")).transport, "https");
        const replicaPort = freePort();
        replica = startProcess(grantRead([
          ...replicaTaskArgs({
            dataDir: `${dir}/replica`,
            port: replicaPort,
            primaryPort: port,
            replicaId: "edge-1",
          }),
          ...tls,
          "--tokens-file",
          tokensFile,
          "--primary-url",
          `https://127.0.0.1:${port}`,
          "--primary-ca",
          pki.caCert,
          "--replica-token",
          "rep",
        ], `${dir}/tls`));
        assert.equal((await replica.waitFor("ferry.started")).transport, "https");
        const written = await trusted.fetch(`https://127.0.0.1:${port}/v1/records`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: "Bearer wri" },
          body: JSON.stringify({ records: [{ op: "put", collection: "c", key: "k", value: 7 }] }),
        });
        assert.equal(written.status, 200, await written.clone().text());
        const { last_lsn: lastLsn } = await written.json();
        const read = await trusted.fetch(
          `https://127.0.0.1:${replicaPort}/v1/records/c/k?min_lsn=${lastLsn}&await_timeout_ms=20000`,
          { headers: { authorization: "Bearer wri" } },
        );
        assert.equal(read.status, 200);
        assert.equal((await read.json()).value, 7);
        // The replica's own server follows the primary's rules: status is admin only.
        const anonymous = await trusted.fetch(`https://127.0.0.1:${replicaPort}/v1/status`);
        assert.equal(anonymous.status, 401);
        await anonymous.body?.cancel();
        // Plain fetch does not trust the private CA: the CA really is what made the calls work.
        await assert.rejects(() => fetch(`https://127.0.0.1:${port}/healthz`), TypeError);
        await stopCleanly(replica);
        replica = undefined;
        await stopCleanly(primary);
      } finally {
        trusted.close();
        for (const process of [replica, primary]) if (process) await killProcess(process);
      }
    });
  },
});

/** Polls the admin-only metrics until `ferry_pull_waiters` is `n` (a pull is held). */
async function waitPullWaiters(
  fetcher: typeof fetch,
  base: string,
  token: string,
  n: number,
): Promise<void> {
  await waitUntil(`${n} held pull(s)`, async () => {
    const response = await fetcher(`${base}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const text = await response.text();
    return new RegExp(`^ferry_pull_waiters ${n}$`, "m").test(text);
  });
}

function writeWith(fetcher: typeof fetch, base: string, token: string): Promise<Response> {
  return fetcher(`${base}/v1/records`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ records: [{ op: "put", collection: "c", key: "k", value: token }] }),
  });
}

Deno.test({
  name: "SIGHUP reloads the tokens and TLS files without dropping a held request; " +
    "files that do not parse keep the last good ones" + NEEDS_OPENSSL,
  ignore: !OPENSSL,
  fn: async () => {
    await withTempDir(async (dir) => {
      const first = await makeTestPki(`${dir}/pki`, "first");
      const second = await makeTestPki(`${dir}/pki`, "second");
      const tlsDir = `${dir}/tls`;
      await Deno.mkdir(tlsDir);
      const [cert, key, tokensFile] = [
        `${tlsDir}/cert.pem`,
        `${tlsDir}/key.pem`,
        `${tlsDir}/t.json`,
      ];
      await Deno.copyFile(first.serverCert, cert);
      await Deno.copyFile(first.serverKey, key);
      await writeTokens(tokensFile, { admin: "admin-1", writer: "writer-1" });
      const port = freePort();
      const base = `https://127.0.0.1:${port}`;
      const primary = startProcess(grantRead([
        ...startTaskArgs(`${dir}/data`, port),
        ...["--tls-cert", cert, "--tls-key", key, "--tokens-file", tokensFile],
      ], tlsDir));
      const oldCa = trustingFetch(await Deno.readTextFile(first.caCert));
      const newCa = trustingFetch(await Deno.readTextFile(second.caCert));
      try {
        await primary.waitFor("ferry.started");
        // A pull held on the first server (first certificate, first tokens) across the reload.
        const held = oldCa.fetch(`${base}/v1/wal?since_lsn=0&await_timeout_ms=30000`, {
          headers: { authorization: "Bearer admin-1" },
        });
        held.catch(() => {}); // Awaited below; a failure before then must not end the run.
        await waitPullWaiters(oldCa.fetch, base, "admin-1", 1);

        await writeTokens(tokensFile, { admin: "admin-2", writer: "writer-2" });
        await Deno.copyFile(second.serverCert, cert);
        await Deno.copyFile(second.serverKey, key);
        primary.child.kill("SIGHUP");
        await primary.waitFor("tls.reloaded");
        assert.equal(count(primary, "tokens.reloaded"), 1);

        assert.equal((await writeWith(newCa.fetch, base, "writer-2")).status, 200, "new token");
        const old = await writeWith(newCa.fetch, base, "writer-1");
        assert.equal(old.status, 401, "the old token no longer works");
        await old.body?.cancel();
        await assert.rejects(
          () => writeWith(oldCa.fetch, base, "writer-2"),
          TypeError,
          "new connections get the new certificate",
        );
        const pulled = await held;
        assert.equal(pulled.status, 200, "the held pull was answered, not dropped");
        assert.deepEqual((await pulled.json()).records.map((r: { lsn: number }) => r.lsn), [1]);

        await Deno.writeTextFile(tokensFile, "{ not json");
        await Deno.writeTextFile(cert, "garbage");
        primary.child.kill("SIGHUP");
        const tokensFailed = await primary.waitFor("tokens.reload_failed");
        assert.match(String(tokensFailed.message), /not valid JSON.*previous tokens stay/);
        const tlsFailed = await primary.waitFor("tls.reload_failed");
        assert.match(String(tlsFailed.message), /--tls-cert .*not a PEM file/);
        assert.equal((await writeWith(newCa.fetch, base, "writer-2")).status, 200, "kept tokens");
        assert.equal(count(primary, "tls.reloaded"), 1, "the second certificate stays");
        await stopCleanly(primary);
      } finally {
        oldCa.close();
        newCa.close();
        await killProcess(primary);
      }
    });
  },
});

Deno.test("beyond loopback with tokens but no TLS: exit 2 with one refusal naming --tls-cert, unless --insecure-plain-http", async () => {
  await withTempDir(async (dir) => {
    const tokensFile = `${dir}/tokens.json`;
    await writeTokens(tokensFile, { admin: "adm" });
    const port = freePort();
    const args = grantRead([
      ...listenOn(startTaskArgs(`${dir}/data`, port), "0.0.0.0", port),
      ...["--host", "0.0.0.0", "--tokens-file", tokensFile],
    ], dir);
    const refused = await runUntilExit(args, 30_000);
    const lines = refused.log.filter((l) =>
      l.event === "ferry.refused" || l.event === "ferry.start_failed"
    );
    assert.equal(lines.length, 1, refused.stderr);
    assert.match(String(lines[0]!.message), /plain HTTP on 0\.0\.0\.0.*--tls-cert/);
    assert.equal(refused.code, 2, refused.stderr);
    assert.throws(() => Deno.statSync(`${dir}/data`), Deno.errors.NotFound, "nothing was written");

    const insecure = startProcess([...args, "--insecure-plain-http"]);
    const warning = await insecure.waitFor("transport.insecure_plain_http");
    assert.equal(warning.level, "warn");
    assert.equal((await insecure.waitFor("ferry.started")).transport, "http");
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    await stopCleanly(insecure);
  });
});

Deno.test("a replica beyond loopback without a tokens file refuses to start (exit 2)", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const args = replicaTaskArgs({
      dataDir: `${dir}/replica`,
      port,
      primaryPort: freePort(),
      replicaId: "edge-1",
    });
    // A replica that starts anyway would serve until killed: 30 s is the deadline, not a bound.
    const outcome = await runUntilExit(
      [...listenOn(args, "0.0.0.0", port), "--host", "0.0.0.0", "--insecure-plain-http"],
      30_000,
    );
    const refusal = outcome.log.find((l) => l.event === "ferry.refused");
    assert.ok(refusal, `a ferry.refused line:\n${outcome.stderr}`);
    assert.match(String(refusal.message), /without a tokens file/);
    assert.equal(outcome.code, 2, outcome.stderr);
  });
});
