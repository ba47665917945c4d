/**
 * A real etcd (Debian's `etcd-server`) on loopback for the cluster tests: ports the test picks, a
 * temp data directory, auto-compaction on (SPEC 13.4), stopped by PID.
 *
 * Where etcd is not installed the tests skip with the reason, except when FERRY_REQUIRE_ETCD=1 (CI),
 * where a missing etcd fails them.
 */

import { freePort, waitUntil } from "./process.ts";

/** Why the etcd tests cannot run here, or undefined when they can. */
export const ETCD_MISSING: string | undefined = _findEtcd() ? undefined : "etcd is not installed " +
  "(Debian's etcd-server; the CI script installs it)";

if (ETCD_MISSING && Deno.env.get("FERRY_REQUIRE_ETCD") === "1") {
  throw new Error(`FERRY_REQUIRE_ETCD=1 but ${ETCD_MISSING}: the cluster tests may not skip`);
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
  /** Kills etcd and removes its data directory. */
  stop(): Promise<void>;
}

/** Starts etcd on two free loopback ports and waits until it answers. */
export async function startEtcd(): Promise<RunningEtcd> {
  const dataDir = await Deno.makeTempDir({ prefix: "ferry-etcd-" });
  const clientPort = freePort();
  const peerPort = freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = new Deno.Command("etcd", {
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
  const stop = async () => {
    try {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  };
  try {
    await waitUntil("etcd to answer", async () => {
      const response = await fetch(`${url}/v3/kv/range`, {
        method: "POST",
        body: JSON.stringify({ key: btoa("ferry-probe") }),
      }).catch(() => undefined);
      await response?.body?.cancel();
      return response?.ok;
    }, 20_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    child,
    dataDir,
    pause: () => child.kill("SIGSTOP"),
    resume: () => child.kill("SIGCONT"),
    stop,
  };
}

function _findEtcd(): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/etcd`).isFile) return true;
    } catch {
      // not here
    }
  }
  return false;
}
