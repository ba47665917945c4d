/**
 * A real etcd (Debian's `etcd-server`) on loopback for the cluster tests: ports the test picks, a
 * temp data directory, auto-compaction on (SPEC 13.4), stopped by PID.
 *
 * Where etcd is not installed the tests skip with the reason, except when FERRY_REQUIRE_ETCD=1 (CI),
 * where a missing etcd fails them.
 */

import { freePort, waitUntil } from "./process.ts";

/** How long a starting etcd may take to answer. */
const ETCD_START_TIMEOUT_MS = 20_000;

/** Why the etcd tests cannot run here, or undefined when they can. */
export const ETCD_MISSING: string | undefined = _onPath("etcd") ? undefined : "etcd is not " +
  "installed (Debian's etcd-server; the CI script installs it)";

if (ETCD_MISSING && Deno.env.get("FERRY_REQUIRE_ETCD") === "1") {
  throw new Error(`FERRY_REQUIRE_ETCD=1 but ${ETCD_MISSING}: the cluster tests may not skip`);
}

/**
 * Why the tests that also read etcd with `etcdctl` cannot run here, or undefined when they can;
 * under FERRY_REQUIRE_ETCD=1 a missing etcdctl fails them as a missing etcd does.
 */
export function etcdctlMissing(): string | undefined {
  const missing = ETCD_MISSING ??
    (_onPath("etcdctl") ? undefined : "etcdctl is not installed (Debian's etcd-client)");
  if (missing && Deno.env.get("FERRY_REQUIRE_ETCD") === "1") {
    throw new Error(`FERRY_REQUIRE_ETCD=1 but ${missing}: the cluster tests may not skip`);
  }
  return missing;
}

/** One running etcd. */
export interface RunningEtcd {
  /** The client URL, `http://127.0.0.1:<port>`. */
  url: string;
  child: Deno.ChildProcess;
  dataDir: string;
  /** Freezes etcd (SIGSTOP): an outage as a node sees it, with its sockets still open. */
  pause(): void;
  /** Resumes a paused etcd (SIGCONT). */
  resume(): void;
  /** Kills etcd and keeps its data: an outage a node sees as refused connections. */
  kill(): Promise<void>;
  /** Starts a killed etcd again on the same ports and data, and waits until it answers. */
  restart(): Promise<void>;
  /** Kills etcd and removes its data directory. */
  stop(): Promise<void>;
}

/** Starts of etcd that exit before answering (a port taken meanwhile) before giving up. */
const ETCD_START_ATTEMPTS = 5;

/** etcd ended before it answered: most likely another process took one of its ports. */
class EtcdExitedError extends Error {
  override name = "EtcdExitedError";
}

/**
 * Starts etcd on two free loopback ports and waits until it answers; on two others when it exits
 * first (another process may bind a port between `freePort`'s probe and etcd's bind, and then the
 * port answers for that process, not this etcd).
 */
export async function startEtcd(): Promise<RunningEtcd> {
  for (let attempt = 1;; attempt++) {
    const dataDir = await Deno.makeTempDir({ prefix: "ferry-etcd-" });
    const url = `http://127.0.0.1:${freePort()}`;
    const peer = `http://127.0.0.1:${freePort()}`;
    const running = _runningEtcd({ dataDir, url, peer });
    try {
      await _waitAnswering(url, running.child);
      return running;
    } catch (error) {
      await running.stop();
      if (!(error instanceof EtcdExitedError) || attempt >= ETCD_START_ATTEMPTS) throw error;
    }
  }
}

function _runningEtcd(options: { dataDir: string; url: string; peer: string }): RunningEtcd {
  const { dataDir, url } = options;
  let child = _spawnEtcd(options);
  const kill = async () => {
    try {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
  };
  const stop = async () => {
    await kill();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  };
  return {
    url,
    get child() {
      return child;
    },
    dataDir,
    pause: () => child.kill("SIGSTOP"),
    resume: () => child.kill("SIGCONT"),
    kill,
    async restart() {
      await kill();
      child = _spawnEtcd(options);
      await _waitAnswering(url, child);
    },
    stop,
  };
}

function _spawnEtcd(options: { dataDir: string; url: string; peer: string }): Deno.ChildProcess {
  const { dataDir, url, peer } = options;
  return new Deno.Command("etcd", {
    args: [
      "--name=ferry-test",
      `--data-dir=${dataDir}/etcd`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=ferry-test=${peer}`,
      "--auto-compaction-mode=periodic",
      "--auto-compaction-retention=1h",
      "--log-level=error",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Waits until etcd answers at `url`; `EtcdExitedError` when `child` ends first. */
async function _waitAnswering(url: string, child: Deno.ChildProcess): Promise<void> {
  let exited = false;
  child.status.then(() => (exited = true));
  await waitUntil("etcd to answer", async () => {
    const response = await fetch(`${url}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: btoa("ferry-probe") }),
    }).catch(() => undefined);
    await response?.body?.cancel();
    // An answer while this etcd has exited came from whatever took the port.
    if (exited) throw new EtcdExitedError(`etcd for ${url} exited before it answered`);
    return response?.ok;
  }, ETCD_START_TIMEOUT_MS);
}

function _onPath(command: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return true;
    } catch {
      // not here
    }
  }
  return false;
}
