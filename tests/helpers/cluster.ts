/** A primary and replicas as real processes, for end-to-end tests. */

import assert from "node:assert/strict";
import {
  freePort,
  replicaTaskArgs,
  type RunningProcess,
  startProcess,
  startTaskArgs,
  waitUntil,
} from "./process.ts";

/** One ferry process of a test cluster. */
export interface Node {
  name: string;
  port: number;
  base: string;
  dataDir: string;
  process: RunningProcess;
  args: string[];
}

/** Starts a primary on a free port in `dataDir`; `extra` are more settings. */
export async function startPrimary(
  dataDir: string,
  extra: string[] = [],
  port = freePort(),
): Promise<Node> {
  const args = [...startTaskArgs(dataDir, port), ...extra];
  const process = startProcess(args);
  await process.waitFor("ferry.started");
  return { name: "primary", port, base: `http://127.0.0.1:${port}`, dataDir, process, args };
}

/** Starts a replica of `primary`. */
export async function startReplica(
  primary: Node,
  options: { dataDir: string; replicaId: string; region?: string; port?: number; extra?: string[] },
): Promise<Node> {
  const port = options.port ?? freePort();
  const args = [
    ...replicaTaskArgs({
      dataDir: options.dataDir,
      port,
      primaryPort: primary.port,
      replicaId: options.replicaId,
      region: options.region,
    }),
    ...(options.extra ?? []),
  ];
  const process = startProcess(args);
  await process.waitFor("ferry.started");
  return {
    name: options.replicaId,
    port,
    base: `http://127.0.0.1:${port}`,
    dataDir: options.dataDir,
    process,
    args,
  };
}

/** Restarts a node with the same arguments (and port). */
export async function restart(node: Node): Promise<Node> {
  const process = startProcess(node.args);
  await process.waitFor("ferry.started");
  return { ...node, process };
}

/** SIGTERM (exit 0 expected) or SIGKILL, then waits for the process to end. */
export async function stop(node: Node, signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
  try {
    node.process.child.kill(signal);
  } catch {
    // already gone
  }
  const status = await node.process.child.status;
  await node.process.stderrDone;
  if (signal === "SIGTERM") {
    assert.equal(
      status.code,
      0,
      `${node.name} exits 0 on SIGTERM:\n${node.process.lines.slice(-20).join("\n")}`,
    );
  }
}

/** GET a JSON document. */
export async function getJson(base: string, path: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${base}${path}`);
  const body = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

/** POST records; returns the response body (and status). */
export async function write(
  base: string,
  records: unknown[],
  extra: Record<string, unknown> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}/v1/records`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ records, ...extra }),
  });
  return { status: response.status, body: await response.json() };
}

/** Waits until the replica at `base` has applied `lsn`. */
export function waitApplied(
  base: string,
  lsn: number,
  timeoutMs = 60_000,
): Promise<Record<string, unknown>> {
  return waitUntil(`${base} to apply ${lsn}`, async () => {
    const status = await getJson(base, "/v1/status").catch(() => undefined);
    return status && (status.applied_lsn as number) >= lsn ? status : undefined;
  }, timeoutMs);
}

export { waitUntil };
