/**
 * The NATS JetStream side of the "fanout" benchmark (bench/fanout_bench.ts), driven the way ferry
 * is: nats-server from Debian with JetStream (file storage), one stream, one durable pull consumer
 * per reader (ack policy none, from the first message), consumed by `@nats-io/jetstream@3` over
 * `@nats-io/transport-node` in two Deno processes; one publisher process sends single messages on
 * the same open-loop schedule as ferry's writer and awaits each one's PubAck (the server's
 * acknowledgement that it stored the message).
 *
 * `deno run --allow-net=127.0.0.1:<port> --allow-env --allow-read --allow-sys bench/fanout_nats.ts '<json task>'`
 *
 * nats-server 2.9 has no per-message fsync setting (`sync_interval` came in 2.10): its file store
 * syncs every two minutes by default, so a PubAck promises less than ferry's durable answer.
 */

import { connect } from "@nats-io/transport-node";
import * as js from "@nats-io/jetstream";
import { cpuFrom } from "./fanout_peers.ts";

export const FANOUT_STREAM = "FANOUT";
const FANOUT_SUBJECT = "fanout.records";
/** Messages a consumer asks the server for at a time (the client keeps the batch topped up). */
const CONSUME_MAX_MESSAGES = 1000;

/** What a readers process is told to do. */
export interface NatsReadersTask {
  role: "nats-readers";
  port: number;
  consumers: string[];
  untilSeq: number;
  /** The write phase starts here: the CPU this process uses from then on is reported. */
  measureFromMs: number;
  deadlineMs: number;
}

/** What the publisher is told to do. */
export interface NatsWriterTask {
  role: "nats-writer";
  port: number;
  ratePerSecond: number;
  count: number;
  startAtMs: number;
  deadlineMs: number;
}

/** Per consumer, the time each sequence arrived (`receivedMs[seq - 1]`). */
export interface NatsReadersOutput {
  consumers: Array<{ id: string; receivedMs: number[] }>;
  cpuS: number;
}

/** One publish: `[seq, sentMs, ackedMs]`. */
export type NatsPublishReceipt = [number, number, number];

export interface NatsWriterOutput {
  writes: NatsPublishReceipt[];
}

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Creates the stream (file storage) and one durable consumer per name. */
export async function createFanoutStream(port: number, consumers: string[]): Promise<void> {
  const nc = await connect({ servers: `127.0.0.1:${port}` });
  try {
    const jsm = await js.jetstreamManager(nc);
    await jsm.streams.add({
      name: FANOUT_STREAM,
      subjects: [FANOUT_SUBJECT],
      storage: js.StorageType.File,
    });
    for (const name of consumers) {
      await jsm.consumers.add(FANOUT_STREAM, {
        durable_name: name,
        ack_policy: js.AckPolicy.None,
        deliver_policy: js.DeliverPolicy.All,
      });
    }
  } finally {
    await nc.close();
  }
}

async function runReaders(task: NatsReadersTask): Promise<NatsReadersOutput> {
  const nc = await connect({ servers: `127.0.0.1:${task.port}` });
  const cpu = cpuFrom(task.measureFromMs);
  try {
    const stream = js.jetstream(nc);
    let waiting = task.consumers.length;
    const consumers = await Promise.all(task.consumers.map(async (id) => {
      const consumer = await stream.consumers.get(FANOUT_STREAM, id);
      const messages = await consumer.consume({ max_messages: CONSUME_MAX_MESSAGES });
      if (--waiting === 0) console.error("ready");
      const receivedMs = new Array<number>(task.untilSeq).fill(0);
      let next = 1;
      for await (const message of messages) {
        if (message.seq !== next) {
          throw new Error(`${id}: expected seq ${next}, got ${message.seq}`);
        }
        receivedMs[next - 1] = Math.round(nowMs() * 100) / 100;
        next += 1;
        if (next > task.untilSeq) break;
      }
      await messages.close();
      return { id, receivedMs };
    }));
    return { consumers, cpuS: cpu() };
  } finally {
    await nc.close();
  }
}

async function runWriter(task: NatsWriterTask): Promise<NatsWriterOutput> {
  const nc = await connect({ servers: `127.0.0.1:${task.port}` });
  try {
    const stream = js.jetstream(nc);
    const intervalMs = 1000 / task.ratePerSecond;
    const encoder = new TextEncoder();
    const writes: Array<Promise<NatsPublishReceipt>> = [];
    let next = 0;
    while (next < task.count) {
      while (next < task.count && task.startAtMs + next * intervalMs <= nowMs()) {
        const i = next++;
        const payload = encoder.encode(
          JSON.stringify({ op: "put", collection: "fanout", key: `k${i % 1000}`, value: { i } }),
        );
        writes.push((async (): Promise<NatsPublishReceipt> => {
          const sentMs = nowMs();
          const ack = await stream.publish(FANOUT_SUBJECT, payload);
          return [ack.seq, sentMs, nowMs()];
        })());
      }
      if (next < task.count) await sleep(task.startAtMs + next * intervalMs - nowMs());
    }
    return { writes: await Promise.all(writes) };
  } finally {
    await nc.close();
  }
}

if (import.meta.main) {
  const task = JSON.parse(Deno.args[0] ?? "{}") as NatsReadersTask | NatsWriterTask;
  const deadline = setTimeout(() => {
    console.error(`${task.role}: deadline passed`);
    Deno.exit(1);
  }, task.deadlineMs - nowMs());
  const output = task.role === "nats-writer" ? await runWriter(task) : await runReaders(task);
  clearTimeout(deadline);
  console.log(JSON.stringify(output));
  Deno.exit(0);
}
