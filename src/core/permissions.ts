/**
 * Start-up permission preflight (SPEC.md section 10). ferry runs with scoped `--allow-*` flags; when
 * one it needs is missing it stops before touching anything and prints the exact flags to add.
 *
 * @module
 */

import type { Config } from "./config.ts";
import { envName, primaryUrlList, SETTINGS } from "./config.ts";
import { etcdEndpointList } from "./node_settings.ts";

/**
 * Lets the state's apply worker lower its own priority (`STATE_APPLY_NICE_STEPS`). Optional: without
 * it ferry starts, and the apply competes with the write path for the CPU.
 */
export const APPLY_PRIORITY_FLAG = "--allow-sys=getPriority,setPriority";

/** One permission ferry needs and the flag that grants it. */
export interface NeededPermission {
  descriptor: Deno.PermissionDescriptor;
  flag: string;
}

/** The `host:port` a URL points at (default ports filled in). */
export function hostPortOf(url: string): string {
  const parsed = new URL(url);
  const port = parsed.port || (parsed.protocol === "https:" ? "443" : "80");
  return `${parsed.hostname}:${port}`;
}

/**
 * Everything `config` needs: its data directory, its listen address, its primary (and the cache its
 * segments come through), and read access to its tokens file, TLS certificate and key, and the
 * primary's CA bundle (each re-read on SIGHUP).
 */
export function neededPermissions(config: Config): NeededPermission[] {
  const needed: NeededPermission[] = [
    { descriptor: { name: "read", path: config.dataDir }, flag: `--allow-read=${config.dataDir}` },
    {
      descriptor: { name: "write", path: config.dataDir },
      flag: `--allow-write=${config.dataDir}`,
    },
    {
      descriptor: { name: "net", host: `${config.host}:${config.port}` },
      flag: `--allow-net=${config.host}:${config.port}`,
    },
  ];
  for (
    const path of [
      config.tokensFile,
      config.tlsCert,
      config.tlsKey,
      config.primaryCa,
      config.etcdCa,
    ]
  ) {
    if (path === undefined) continue;
    needed.push({ descriptor: { name: "read", path }, flag: `--allow-read=${path}` });
  }
  for (const url of [...primaryUrlList(config), config.segmentsUrl]) {
    if (config.role !== "replica" || url === undefined) continue;
    const target = hostPortOf(url);
    needed.push({ descriptor: { name: "net", host: target }, flag: `--allow-net=${target}` });
  }
  if (config.role === "node") {
    // The other members' URLs come from etcd: the operator grants them with the cluster's hosts.
    for (const url of etcdEndpointList(config)) {
      const target = hostPortOf(url);
      needed.push({ descriptor: { name: "net", host: target }, flag: `--allow-net=${target}` });
    }
  }
  return needed;
}

/** The flags missing for `config`, or an empty list when every permission is granted. */
export function missingPermissionFlags(config: Config): string[] {
  return neededPermissions(config)
    .filter(({ descriptor }) => Deno.permissions.querySync(descriptor).state !== "granted")
    .map(({ flag }) => flag);
}

/** A message naming the flags to add. */
export function missingPermissionsMessage(flags: readonly string[]): string {
  return `ferry lacks permissions it needs; add these flags to the deno command: ${
    flags.join(" ")
  }`;
}

/**
 * Reads a `FERRY_*` variable if `--allow-env` grants it; undefined otherwise (never prompts). Used
 * as the env source of `parseConfig`.
 */
export function readGrantedEnv(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  return Deno.env.get(name);
}

/** True when at least one `FERRY_*` variable may be read (for the start-up log). */
export function envGranted(): boolean {
  return SETTINGS.some((s) =>
    Deno.permissions.querySync({ name: "env", variable: envName(s.flag) }).state === "granted"
  );
}

/** What was granted, for the start-up log line. */
export function grantedSummary(config: Config): Record<string, boolean> {
  const summary: Record<string, boolean> = {};
  for (const { descriptor, flag } of neededPermissions(config)) {
    summary[flag] = Deno.permissions.querySync(descriptor).state === "granted";
  }
  summary["--allow-env=FERRY_*"] = envGranted();
  summary[APPLY_PRIORITY_FLAG] = (["getPriority", "setPriority"] as const).every((kind) =>
    Deno.permissions.querySync({ name: "sys", kind }).state === "granted"
  );
  return summary;
}
