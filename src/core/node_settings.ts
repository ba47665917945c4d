/**
 * The settings of a cluster member (`main.ts node`, SPEC.md 13.4); with every primary setting, they
 * are a node's. FERRY_ETCD_USER and FERRY_ETCD_PASSWORD (etcd auth) are read from the environment
 * only, never from flags: a password on a command line shows in `ps`.
 *
 * @module
 */

import {
  CLUSTER_MEMBERS_MAX,
  CLUSTER_NAME_CHARS_MAX,
  ETCD_ENDPOINTS_MAX,
  LEASE_TTL_S_DEFAULT,
  LEASE_TTL_S_MAX,
  LEASE_TTL_S_MIN,
} from "./cluster_limits.ts";
import type { Config, Setting } from "./config_types.ts";
import { ConfigError } from "./errors.ts";

export const NODE_SETTINGS: readonly Setting[] = [
  {
    key: "etcdEndpoints",
    flag: "etcd-endpoints",
    kind: "string",
    byDefault: undefined,
    help: "etcd v3 endpoints, comma-separated (http://127.0.0.1:2379,...)",
    only: "node",
  },
  {
    key: "cluster",
    flag: "cluster",
    kind: "string",
    byDefault: undefined,
    help: "the cluster's name: its keys live under ferry/<cluster>/ in etcd",
    only: "node",
  },
  {
    key: "nodeId",
    flag: "node-id",
    kind: "string",
    byDefault: undefined,
    help: "this node's id, one of --members",
    only: "node",
  },
  {
    key: "members",
    flag: "members",
    kind: "string",
    byDefault: undefined,
    help: "every member's id, comma-separated, this node included (a fixed list)",
    only: "node",
  },
  {
    key: "leaseTtlS",
    flag: "lease-ttl-s",
    kind: "int",
    byDefault: LEASE_TTL_S_DEFAULT,
    min: LEASE_TTL_S_MIN,
    max: LEASE_TTL_S_MAX,
    help: "the leader's etcd lease; a dead leader is replaced within about this long",
    only: "node",
  },
  {
    key: "etcdCa",
    flag: "etcd-ca",
    kind: "string",
    byDefault: undefined,
    help: "PEM CA bundle that signs etcd's certificate (https endpoints)",
    only: "node",
  },
];

/** Node ids and cluster names: they become replica ids at the leader and etcd key parts. */
const _NAME_PATTERN = new RegExp(`^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,${CLUSTER_NAME_CHARS_MAX - 1}}$`);

/** The member ids of `--members`, this node's first; refuses a list that cannot elect. */
export function memberList(config: Config): string[] {
  const members = (config.members ?? "").split(",").map((id) => id.trim()).filter((id) => id);
  const bad = members.find((id) => !_NAME_PATTERN.test(id));
  if (bad !== undefined) throw new ConfigError(`--members: "${bad}" is not a valid node id`);
  if (new Set(members).size !== members.length) {
    throw new ConfigError("--members lists an id twice");
  }
  if (members.length > CLUSTER_MEMBERS_MAX) {
    throw new ConfigError(`--members lists ${members.length} ids; at most ${CLUSTER_MEMBERS_MAX}`);
  }
  if (!members.includes(config.nodeId!)) {
    throw new ConfigError(
      `--node-id ${config.nodeId} is not one of --members (${members.join(",")})`,
    );
  }
  return [config.nodeId!, ...members.filter((id) => id !== config.nodeId)];
}

/** The etcd endpoints of `--etcd-endpoints`, each a URL. */
export function etcdEndpointList(config: Config): string[] {
  const endpoints = (config.etcdEndpoints ?? "").split(",").map((u) => u.trim()).filter((u) => u);
  if (endpoints.length === 0 || endpoints.length > ETCD_ENDPOINTS_MAX) {
    throw new ConfigError(`--etcd-endpoints needs 1 to ${ETCD_ENDPOINTS_MAX} URLs`);
  }
  for (const url of endpoints) {
    if (!/^https?:\/\//.test(url) || !URL.canParse(url)) {
      throw new ConfigError(`--etcd-endpoints: "${url}" is not an http(s) URL`);
    }
  }
  return endpoints;
}

/** A node's settings that must be given, and must agree. */
export function validateNodeConfig(config: Config): void {
  for (const flag of ["etcd-endpoints", "cluster", "node-id", "members"] as const) {
    const setting = NODE_SETTINGS.find((s) => s.flag === flag)!;
    if (config[setting.key] === undefined) {
      throw new ConfigError(
        `a node needs --${flag} (or FERRY_${flag.toUpperCase().replaceAll("-", "_")})`,
      );
    }
  }
  for (const [flag, name] of [["cluster", config.cluster], ["node-id", config.nodeId]] as const) {
    if (!_NAME_PATTERN.test(name!)) {
      throw new ConfigError(`--${flag}: "${name}" is not a valid name`);
    }
  }
  memberList(config);
  etcdEndpointList(config);
}
