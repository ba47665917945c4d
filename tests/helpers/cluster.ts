/** A primary and replicas as real processes, for end-to-end tests. */

import assert from "node:assert/strict";
import { KvState, type StateEntry } from "../../src/state/kv_state.ts";
import {
  killProcess,
  replicaTaskArgs,
  type RunningProcess,
  startOnFreePort,
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
  port?: number,
): Promise<Node> {
  const argsFor = (p: number) => [...startTaskArgs(dataDir, p), ...extra];
  const started = await _startNode(argsFor, port);
  return { name: "primary", base: `http://127.0.0.1:${started.port}`, dataDir, ...started };
}

/** Starts on `port`, or on a free one (picked again if another process takes it first). */
async function _startNode(
  argsFor: (port: number) => string[],
  port: number | undefined,
): Promise<{ process: RunningProcess; port: number; args: string[] }> {
  if (port === undefined) return await startOnFreePort(argsFor);
  const args = argsFor(port);
  const process = startProcess(args);
  await process.waitFor("ferry.started");
  return { process, port, args };
}

/** Starts a replica of `primary`. */
export async function startReplica(
  primary: Node,
  options: { dataDir: string; replicaId: string; region?: string; port?: number; extra?: string[] },
): Promise<Node> {
  const argsFor = (port: number) => [
    ...replicaTaskArgs({
      dataDir: options.dataDir,
      port,
      primaryPort: primary.port,
      replicaId: options.replicaId,
      region: options.region,
    }),
    ...(options.extra ?? []),
  ];
  const started = await _startNode(argsFor, options.port);
  return {
    name: options.replicaId,
    base: `http://127.0.0.1:${started.port}`,
    dataDir: options.dataDir,
    ...started,
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
  const status = await killProcess(node.process, signal);
  if (signal === "SIGTERM") {
    assert.equal(
      status.code,
      0,
      `${node.name} exits 0 on SIGTERM:\n${node.process.lines.slice(-20).join("\n")}`,
    );
  }
}

/**
 * Runs `body`; when it throws, prints each node's warnings, errors and last lines first (a
 * failure far from its cause, such as a body cut mid-read, is explained by the server's log).
 */
export async function withNodeLogs<T>(nodes: readonly Node[], body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    printNodeLogs(nodes, { notable: (line) => /"level":"(warn|error)"/.test(line) });
    throw error;
  }
}

/** Lines of a node's log printed after its notable ones when a test fails. */
const NODE_LOG_TAIL_LINES = 20;

/**
 * Prints each node's log lines that are `notable` (the last `notableMax` of them) and its last
 * `tail` lines, a line in both once: why a multi-process test failed.
 */
export function printNodeLogs(
  nodes: readonly Node[],
  options: { notable: (line: string) => boolean; notableMax?: number; tail?: number },
): void {
  const { notable, notableMax = Infinity, tail = NODE_LOG_TAIL_LINES } = options;
  for (const node of nodes) {
    const lines = node.process.lines;
    const shown = new Set([
      ...lines.filter(notable).slice(-notableMax),
      ...(tail > 0 ? lines.slice(-tail) : []),
    ]);
    console.log(`---- ${node.name} (${node.port}) ----\n${[...shown].join("\n")}`);
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

/**
 * Waits until the node at `base` has applied everything it holds (its state is compared after it
 * stops, and a stop does not wait for the apply). `status` reads `/v1/status` where tokens are on.
 */
export function waitStateAtHead(
  base: string,
  status: () => Promise<Record<string, unknown>> = () => getJson(base, "/v1/status"),
): Promise<true> {
  return waitUntil(`${base}'s state to apply everything`, async () => {
    const s = await status();
    return (s.applied_lsn as number) >= (s.current_lsn as number) || undefined;
  }, 60_000);
}

/** Every entry of a stopped node's materialised state, in (collection, key) order. */
export async function dumpState(kvPath: string): Promise<StateEntry[]> {
  const kv = await Deno.openKv(kvPath);
  try {
    return await Array.fromAsync(new KvState(kv).scan());
  } finally {
    kv.close();
  }
}

export function replicaKvPath(dataDir: string): string {
  let name = "state-000000.kv";
  try {
    name = Deno.readTextFileSync(`${dataDir}/CURRENT`).trim();
  } catch {
    // no re-bootstrap yet
  }
  return `${dataDir}/${name}`;
}

/** `writers` concurrent writers, `perWriter` single-record writes each, over a small key space. */
export async function writeLoad(
  base: string,
  options: { writers: number; perWriter: number; keys: number; tag: string; stopOnError?: boolean },
): Promise<Array<{ lsn: number; record: Record<string, unknown> }>> {
  const acked: Array<{ lsn: number; record: Record<string, unknown> }> = [];
  await Promise.all(Array.from({ length: options.writers }, async (_, w) => {
    for (let i = 0; i < options.perWriter; i++) {
      const key = `k${(w * 7919 + i * 104_729) % options.keys}`;
      const record = i % 10 === 9
        ? { op: "delete", collection: "items", key }
        : { op: "put", collection: "items", key, value: { w, i, tag: options.tag } };
      try {
        const { status, body } = await write(base, [record]);
        if (status === 200) acked.push({ lsn: body.last_lsn as number, record });
      } catch (error) {
        if (options.stopOnError) return;
        throw error;
      }
    }
  }));
  return acked;
}

export async function converge(primary: Node, replicas: Node[]): Promise<number> {
  const status = await getJson(primary.base, "/v1/status");
  const current = status.current_lsn as number;
  for (const replica of replicas) await waitApplied(replica.base, current);
  await waitStateAtHead(primary.base);
  await waitUntil("every replica's ack to reach the primary", async () => {
    const s = await getJson(primary.base, "/v1/status");
    const replicasSeen = s.replicas as Array<{ id: string; last_acked_lsn: number }>;
    return replicas.every((r) =>
      replicasSeen.find((x) => x.id === r.name)?.last_acked_lsn === current
    );
  });
  return current;
}

export async function assertSameState(primary: Node, replicas: Node[]): Promise<void> {
  const expected = await dumpState(`${primary.dataDir}/ferry.kv`);
  assert.ok(expected.length > 0);
  for (const replica of replicas) {
    const actual = await dumpState(replicaKvPath(replica.dataDir));
    assert.equal(
      actual.length,
      expected.length,
      `${replica.name} holds as many keys as the primary`,
    );
    // Entry by entry: one deepEqual of 100 000 entries that differ builds a diff of gigabytes.
    for (let i = 0; i < expected.length; i++) {
      assert.deepEqual(actual[i], expected[i], `${replica.name}'s entry ${i} is the primary's`);
    }
  }
}

export { waitUntil };
