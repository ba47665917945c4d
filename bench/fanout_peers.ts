/**
 * Child processes of the "fanout" benchmark (bench/fanout_bench.ts) on ferry's side, so that the
 * readers and the writer share an event loop neither with each other nor with the primary.
 *
 * `deno run --allow-net=127.0.0.1:<port> bench/fanout_peers.ts '<json task>'`
 *
 * - role "readers": one reader per replica id, all in this process, each CRC-checking every frame
 *   through `FerryClient` (`streamFrames` in mode "stream", `pullFrames` long-polls in mode
 *   "poll"), acking its position every `REPLICA_STREAM_ACK_MS` as a streaming replica does, and
 *   noting when each run of records arrived. Writes "ready" on stderr once every reader is
 *   connected, stops once each holds `untilLsn`, and prints one JSON line: per replica, its
 *   receipts `[firstLsn, lastLsn, receivedMs]`.
 * - role "writer": single-record writes on a fixed schedule (open loop: each write starts at its
 *   time whether or not earlier ones were answered; writes that fell behind go out at once, so
 *   the rate is reached), from `startAtMs`. Prints `[lsn, sentMs, ackedMs]` per write.
 *
 * Every timestamp is `performance.timeOrigin + performance.now()`, comparable between processes.
 */

import process from "node:process";
import { FerryClient } from "../src/client/client.ts";
import type { WriteRecord } from "../src/client/types.ts";
import { REPLICA_STREAM_ACK_MS } from "../src/core/limits.ts";
import type { DecodedFrame } from "../src/wal/frame.ts";

/** Records a long-polling reader asks for per pull, and how long it lets the primary hold it. */
const PULL_MAX_COUNT = 1000;
const PULL_AWAIT_MS = 25_000;
const PULL_GRACE_MS = 10_000;
const WRITE_COLLECTION = "fanout";

/** What a readers process is told to do. */
export interface ReadersTask {
  role: "readers";
  mode: "stream" | "poll";
  base: string;
  ids: string[];
  untilLsn: number;
  /** The write phase starts here: the CPU this process uses from then on is reported. */
  measureFromMs: number;
  deadlineMs: number;
}

/** What the writer process is told to do. */
export interface WriterTask {
  role: "writer";
  base: string;
  ratePerSecond: number;
  count: number;
  startAtMs: number;
  deadlineMs: number;
  /**
   * Plain `fetch` and the answer's `last_lsn` instead of `FerryClient` (the floor program answers
   * with LSNs only).
   */
  plain?: boolean;
}

/** One run of records a reader got: `[firstLsn, lastLsn, receivedMs]`. */
export type Receipt = [number, number, number];

export interface ReadersOutput {
  replicas: Array<{ id: string; receipts: Receipt[]; acks: number; reconnects: number }>;
  /** CPU seconds (user + system) this process used from `measureFromMs` to the end. */
  cpuS: number;
}

/** One write: `[lsn, sentMs, ackedMs]`. */
export type WriteReceipt = [number, number, number];

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

/** CPU seconds this process uses from `fromMs` until the returned function is called. */
export function cpuFrom(fromMs: number): () => number {
  const total = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1e6;
  };
  let start: number | undefined;
  const timer = setTimeout(() => (start = total()), Math.max(0, fromMs - nowMs()));
  return () => {
    clearTimeout(timer);
    return total() - (start ?? total());
  };
}

/** One reader's progress, and its acks every `REPLICA_STREAM_ACK_MS`. */
class _Reader {
  receipts: Receipt[] = [];
  since = 0;
  acks = 0;
  reconnects = 0;
  #timer: ReturnType<typeof setInterval>;

  constructor(readonly client: FerryClient, readonly id: string) {
    this.#timer = setInterval(() => {
      this.acks += 1;
      this.client.ack(id, { appliedLsn: this.since, durableLsn: this.since }).catch(() => {});
    }, REPLICA_STREAM_ACK_MS);
  }

  /** Notes a run of frames, checking they follow on. */
  take(frames: readonly DecodedFrame[], receivedMs: number): void {
    frames.forEach((frame, i) => {
      if (frame.lsn !== this.since + 1 + i) {
        throw new Error(`${this.id}: expected LSN ${this.since + 1 + i}, got ${frame.lsn}`);
      }
    });
    const last = frames[frames.length - 1]!.lsn;
    this.receipts.push([this.since + 1, last, receivedMs]);
    this.since = last;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

async function _stream(reader: _Reader, untilLsn: number, connected: () => void): Promise<void> {
  while (reader.since < untilLsn) {
    const stream = await reader.client.streamFrames({
      replicaId: reader.id,
      sinceLsn: reader.since,
    });
    connected();
    for await (const item of stream) {
      if (item.kind === "corrupt") throw new Error(`${reader.id}: ${item.reason}`);
      if (item.kind === "frames") reader.take(item.frames, nowMs());
      if (reader.since >= untilLsn) break;
    }
    // A stream the reader ends itself (it holds everything) is not a reconnect.
    if (reader.since < untilLsn) reader.reconnects += 1;
  }
}

async function _poll(reader: _Reader, untilLsn: number, connected: () => void): Promise<void> {
  while (reader.since < untilLsn) {
    const pulling = reader.client.pullFrames({
      replicaId: reader.id,
      sinceLsn: reader.since,
      maxCount: PULL_MAX_COUNT,
      awaitTimeoutMs: PULL_AWAIT_MS,
      signal: AbortSignal.timeout(PULL_AWAIT_MS + PULL_GRACE_MS),
    });
    connected();
    const pull = await pulling;
    const receivedMs = nowMs();
    if (pull.corrupt) throw new Error(`${reader.id}: ${pull.corrupt.reason}`);
    if (pull.frames.length > 0) reader.take(pull.frames, receivedMs);
  }
}

async function runReaders(task: ReadersTask): Promise<ReadersOutput> {
  const client = new FerryClient(task.base);
  let waiting = task.ids.length;
  // A long-poll is parked once sent; the main process also checks the primary's own count.
  const connected = (reader: { first: boolean }) => () => {
    if (!reader.first) return;
    reader.first = false;
    if (--waiting === 0) console.error("ready");
  };
  const readers = task.ids.map((id) => new _Reader(client, id));
  const cpu = cpuFrom(task.measureFromMs);
  try {
    await Promise.all(readers.map((reader) => {
      const follow = task.mode === "stream" ? _stream : _poll;
      return follow(reader, task.untilLsn, connected({ first: true }));
    }));
  } finally {
    for (const reader of readers) reader.stop();
  }
  return {
    replicas: readers.map((r) => ({
      id: r.id,
      receipts: r.receipts,
      acks: r.acks,
      reconnects: r.reconnects,
    })),
    cpuS: cpu(),
  };
}

/** Writes `records` with one POST to `base` and returns the answer's `last_lsn`. */
function plainWrite(base: string): (records: WriteRecord[]) => Promise<number> {
  return async (records) => {
    const response = await fetch(`${base}/v1/records`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ records }),
    });
    if (!response.ok) throw new Error(`write: ${response.status} ${await response.text()}`);
    return ((await response.json()) as { last_lsn: number }).last_lsn;
  };
}

async function runWriter(task: WriterTask): Promise<WriterOutput> {
  const client = new FerryClient(task.base);
  const write = task.plain ? plainWrite(task.base) : async (records: WriteRecord[]) => {
    return (await client.write(records)).lastLsn;
  };
  const intervalMs = 1000 / task.ratePerSecond;
  const writes: Array<Promise<WriteReceipt>> = [];
  let next = 0;
  while (next < task.count) {
    // Every write whose time has come goes out now: a late timer does not lower the rate.
    while (next < task.count && task.startAtMs + next * intervalMs <= nowMs()) {
      const i = next++;
      writes.push((async (): Promise<WriteReceipt> => {
        const sentMs = nowMs();
        const lastLsn = await write([
          { op: "put", collection: WRITE_COLLECTION, key: `k${i % 1000}`, value: { i } },
        ]);
        return [lastLsn, sentMs, nowMs()];
      })());
    }
    if (next < task.count) await sleep(task.startAtMs + next * intervalMs - nowMs());
  }
  return { writes: await Promise.all(writes) };
}

if (import.meta.main) {
  const task = JSON.parse(Deno.args[0] ?? "{}") as ReadersTask | WriterTask;
  const deadline = setTimeout(() => {
    console.error(`${task.role}: deadline passed`);
    Deno.exit(1);
  }, task.deadlineMs - nowMs());
  const output = task.role === "writer" ? await runWriter(task) : await runReaders(task);
  clearTimeout(deadline);
  console.log(JSON.stringify(output));
  // Readers' streams may still be open on the primary's side: leave without waiting for them.
  Deno.exit(0);
}
