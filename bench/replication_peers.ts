/**
 * Child processes of the "fanout" benchmark (bench/replication_bench.ts), so that the replicas and
 * the writer do not share an event loop with each other or with the primary.
 *
 * `deno run --allow-net=127.0.0.1:<port> bench/replication_peers.ts '<json PeerTask>'`
 *
 * - role "replicas": long-polling raw-frame pullers, one per id, each CRC-checking every frame
 *   (`FerryClient.pullFrames`) and noting when each pull arrived; they stop once they hold
 *   `untilLsn`. Prints one JSON line: every replica's pulls as `[firstLsn, lastLsn, receivedMs]`.
 * - role "writer": single-record writes at a fixed rate (open loop: a write starts on schedule
 *   whether or not the previous one was answered), from `startAtMs` on. Prints one JSON line:
 *   `[lsn, sentMs, ackedMs]` per write.
 *
 * Every timestamp is `performance.timeOrigin + performance.now()` (wall-clock ms with sub-ms
 * resolution), comparable between processes on the same machine.
 */

import { FerryClient } from "../src/client/client.ts";

/** Records a replica asks for per pull. */
const PULL_MAX_COUNT = 1000;
/** How long a replica lets the primary hold its pull. */
const PULL_AWAIT_MS = 25_000;
/** How long past its hold a pull may take before the replica gives up on it. */
const PULL_GRACE_MS = 10_000;
/** Collection the writer writes to. */
const WRITE_COLLECTION = "fanout";

/** What a replicas process is told to do. */
export interface ReplicasTask {
  role: "replicas";
  base: string;
  ids: string[];
  /** Stop once this LSN is received. */
  untilLsn: number;
  /** Ack the received position at most this often per replica (0 = never ack). */
  ackIntervalMs: number;
  /** Give up (exit 1) at this wall-clock time. */
  deadlineMs: number;
}

/** What the writer process is told to do. */
export interface WriterTask {
  role: "writer";
  base: string;
  ratePerSecond: number;
  count: number;
  /** Wall-clock time of the first write. */
  startAtMs: number;
  deadlineMs: number;
}

export type PeerTask = ReplicasTask | WriterTask;

/** One replica's pulls that brought records: `[firstLsn, lastLsn, receivedMs]`. */
export type PullReceipt = [number, number, number];

/** Output of a replicas process. */
export interface ReplicasOutput {
  replicas: Array<{ id: string; pulls: PullReceipt[]; acks: number }>;
}

/** One write: `[lsn, sentMs, ackedMs]`. */
export type WriteReceipt = [number, number, number];

/** Output of the writer process. */
export interface WriterOutput {
  writes: WriteReceipt[];
}

/** Wall-clock ms with sub-ms resolution. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

async function runReplica(
  client: FerryClient,
  id: string,
  task: ReplicasTask,
): Promise<{ id: string; pulls: PullReceipt[]; acks: number }> {
  const pulls: PullReceipt[] = [];
  let since = 0;
  let lastAckMs = nowMs();
  let acks = 0;
  while (since < task.untilLsn) {
    const pull = await client.pullFrames({
      replicaId: id,
      sinceLsn: since,
      maxCount: PULL_MAX_COUNT,
      awaitTimeoutMs: PULL_AWAIT_MS,
      signal: AbortSignal.timeout(PULL_AWAIT_MS + PULL_GRACE_MS),
    });
    const receivedMs = nowMs();
    if (pull.corrupt) {
      throw new Error(`${id}: corrupt frame after ${since}: ${pull.corrupt.reason}`);
    }
    if (pull.frames.length === 0) continue;
    pull.frames.forEach((frame, i) => {
      if (frame.lsn !== since + 1 + i) {
        throw new Error(`${id}: expected LSN ${since + 1 + i}, got ${frame.lsn}`);
      }
    });
    const last = pull.frames[pull.frames.length - 1]!.lsn;
    pulls.push([since + 1, last, receivedMs]);
    since = last;
    if (task.ackIntervalMs > 0 && receivedMs - lastAckMs >= task.ackIntervalMs) {
      await client.ack(id, { appliedLsn: since, durableLsn: since });
      lastAckMs = receivedMs;
      acks += 1;
    }
  }
  return { id, pulls, acks };
}

async function runReplicas(task: ReplicasTask): Promise<ReplicasOutput> {
  const client = new FerryClient(task.base);
  const replicas = await Promise.all(task.ids.map((id) => runReplica(client, id, task)));
  return { replicas };
}

async function runWriter(task: WriterTask): Promise<WriterOutput> {
  const client = new FerryClient(task.base);
  const intervalMs = 1000 / task.ratePerSecond;
  const writes: Array<Promise<WriteReceipt>> = [];
  for (let i = 0; i < task.count; i++) {
    await sleep(task.startAtMs + i * intervalMs - nowMs());
    writes.push((async (): Promise<WriteReceipt> => {
      const sentMs = nowMs();
      const answer = await client.write([
        { op: "put", collection: WRITE_COLLECTION, key: `k${i}`, value: { i } },
      ]);
      return [answer.lastLsn, sentMs, nowMs()];
    })());
  }
  return { writes: await Promise.all(writes) };
}

if (import.meta.main) {
  const task = JSON.parse(Deno.args[0] ?? "{}") as PeerTask;
  const deadline = setTimeout(() => {
    console.error(`${task.role}: deadline passed`);
    Deno.exit(1);
  }, task.deadlineMs - nowMs());
  const output = task.role === "writer" ? await runWriter(task) : await runReplicas(task);
  clearTimeout(deadline);
  console.log(JSON.stringify(output));
}
