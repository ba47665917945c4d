/**
 * A cluster member's life (`main.ts node`, SPEC.md 13.4): reach etcd (or exit 2 with one line),
 * open the stores as a standby, grant the lease, serve, and let the member loop switch the node
 * between standby and leader until a signal; then resign (a standby takes over at once), and close.
 * Needs what a primary needs, plus `--allow-net` for the etcd endpoints and the other members.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import { EventHub, publishingLogger } from "../core/events.ts";
import type { Logger } from "../core/log.ts";
import { etcdEndpointList, memberList } from "../core/node_settings.ts";
import { readGrantedEnv } from "../core/permissions.ts";
import { EtcdCoordinator } from "../cluster/coordinator.ts";
import { checkMembers } from "../cluster/members_guard.ts";
import { EtcdClient } from "../cluster/etcd.ts";
import { ClusterMember, isEtcdUnavailable } from "../cluster/member.ts";
import { ClusterNode } from "./cluster_node.ts";
import { PRIMARY_EVENTS } from "./events.ts";
import type { Listener } from "./listener.ts";
import { loadSecurity } from "./security.ts";
import { serveUntilSignal } from "./serve.ts";
import { lockUsableDataDir, probeListenAddress } from "./start_checks.ts";
import { checkDataDirTimeline } from "./timeline_check.ts";

/** Runs a member until a signal. 2: a setting to change, or etcd out of reach at start. */
export async function runNode(config: Config, baseLogger: Logger): Promise<number> {
  const events = new EventHub();
  const logger = publishingLogger(baseLogger, events, PRIMARY_EVENTS);
  const security = await loadSecurity(config, logger);
  if (!security) return 2;
  const coordinator = new EtcdCoordinator(await _etcdClient(config), config.cluster!);
  try {
    await coordinator.readTerm();
  } catch (error) {
    if (!isEtcdUnavailable(error)) throw error;
    logger.error("ferry.start_failed", {
      code: "etcd_unavailable",
      flag: "--etcd-endpoints",
      endpoints: etcdEndpointList(config),
      message: `cannot reach etcd: ${(error as Error).message}; start etcd or fix --etcd-endpoints`,
    });
    return 2;
  }
  probeListenAddress(config);
  const lock = await lockUsableDataDir(config.dataDir);
  try {
    await checkDataDirTimeline(config.dataDir, config.timeline);
    // One member changed per restart at most (`members_guard.ts`): exit 2 on a larger change.
    await checkMembers(coordinator, memberList(config), logger);
    return await _run(config, logger, { events, coordinator, security });
  } finally {
    lock.release();
  }
}

async function _run(
  config: Config,
  logger: Logger,
  parts: {
    events: EventHub;
    coordinator: EtcdCoordinator;
    security: NonNullable<Awaited<ReturnType<typeof loadSecurity>>>;
  },
): Promise<number> {
  const [nodeId, ...others] = memberList(config);
  const node = await ClusterNode.open({
    config,
    logger,
    events: parts.events,
    coordinator: parts.coordinator,
    auth: parts.security.auth,
    others: new Set(others),
  });
  const member = new ClusterMember({
    nodeId: nodeId!,
    url: config.advertiseUrl,
    members: [nodeId!, ...others],
    leaseTtlS: config.leaseTtlS,
    coordinator: parts.coordinator,
    hooks: node.hooks,
    logger,
  });
  let server: Listener | undefined;
  const unhook = _testBlockHook(logger);
  try {
    await member.start();
    server = await serveUntilSignal(config, logger, {
      fetch: node.fetch,
      started: () => ({
        role: "node",
        node_id: nodeId,
        cluster: config.cluster,
        members: [nodeId, ...others],
        lease_ttl_s: config.leaseTtlS,
        current_lsn: node.opened?.spool.currentLsn() ?? 0,
      }),
      onServing: () => node.serving(),
      security: parts.security,
    });
  } catch (error) {
    unhook();
    await member.stop({ resign: true }).catch(() => {});
    await node.close(undefined);
    if (isEtcdUnavailable(error)) {
      logger.error("ferry.start_failed", { code: "etcd_unavailable", message: String(error) });
      return 2;
    }
    throw error;
  }
  unhook();
  await member.stop({ resign: true });
  await node.close(server);
  logger.info("ferry.stopped", { node_id: nodeId });
  return 0;
}

async function _etcdClient(config: Config): Promise<EtcdClient> {
  return new EtcdClient({
    endpoints: etcdEndpointList(config),
    user: readGrantedEnv("FERRY_ETCD_USER"),
    password: readGrantedEnv("FERRY_ETCD_PASSWORD"),
    caPem: config.etcdCa === undefined ? undefined : await Deno.readTextFile(config.etcdCa),
  });
}

/**
 * A test hook (SPEC.md 13.4's pause test): with FERRY_TEST_BLOCK_MS set, each SIGUSR2 blocks the
 * event loop for that long, as a long synchronous task would; the lease is kept from a Worker, so
 * the node must not step down. Off unless the variable is set.
 */
function _testBlockHook(logger: Logger): () => void {
  const blockMs = Number(readGrantedEnv("FERRY_TEST_BLOCK_MS") ?? "0");
  if (!(blockMs > 0)) return () => {};
  const block = () => {
    logger.warn("test.event_loop_blocked", { ms: blockMs });
    const until = performance.now() + blockMs;
    while (performance.now() < until) { /* a blocked event loop, on purpose */ }
  };
  Deno.addSignalListener("SIGUSR2", block);
  return () => Deno.removeSignalListener("SIGUSR2", block);
}
