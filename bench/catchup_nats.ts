/**
 * The NATS side of the catch-up benchmark (bench/replication_bench.ts "catchup"): nats-server from
 * Debian with JetStream, one file-storage stream holding the same 128-byte records, drained by a
 * pull consumer with each of npm's two JavaScript clients (`nats` 2.x and `@nats-io/jetstream`
 * 3.x over `@nats-io/transport-node`), each at several fetch sizes, so that NATS is measured at
 * its best. Each drain has its own durable consumer (ack policy none), reading from the start.
 */

import * as natsV2 from "nats";
import { connect as connectV3 } from "@nats-io/transport-node";
import * as natsV3 from "@nats-io/jetstream";
import { freePort } from "../tests/helpers/process.ts";

/** How long nats-server may take to say it is ready. */
const NATS_START_TIMEOUT_MS = 30_000;
/** JetStream publishes in flight while the backlog is built (not timed). */
const NATS_PUBLISH_WINDOW = 1000;
/** How long one fetch may wait for its batch. */
const NATS_FETCH_EXPIRES_MS = 30_000;
/** Acks a consumer may have outstanding (ack policy none sends none; set high as a ceiling). */
const NATS_MAX_ACK_PENDING = 100_000;

const NATS_STREAM = "BENCH";
const NATS_SUBJECT = "bench.records";

/** A running nats-server. */
export interface NatsServer {
  child: Deno.ChildProcess;
  port: number;
  version: string;
  done: Promise<void>;
}

/** One way of draining the stream. */
export interface NatsDrainConfig {
  client: "nats@2" | "@nats-io/jetstream@3";
  fetchMessages: number;
}

/** What one drain measured. */
export interface NatsDrain extends NatsDrainConfig {
  records: number;
  seconds: number;
}

/** Starts nats-server with JetStream on 127.0.0.1, storing in `storeDir`; resolves when ready. */
export async function startNatsServer(storeDir: string): Promise<NatsServer> {
  const version = new TextDecoder().decode(
    (await new Deno.Command("nats-server", { args: ["--version"], stdout: "piped" }).output())
      .stdout,
  ).trim().replace(/^nats-server:\s*/, "");
  const port = freePort();
  const child = new Deno.Command("nats-server", {
    args: ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const done = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      log += chunk;
      if (log.includes("Server is ready")) markReady();
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), NATS_START_TIMEOUT_MS);
  });
  const outcome = await Promise.race([
    ready.then(() => "ready" as const),
    child.status.then(() => "exited" as const),
    timeout,
  ]);
  clearTimeout(timer);
  if (outcome !== "ready") {
    if (outcome === "timeout") child.kill("SIGKILL");
    await child.status;
    throw new Error(`nats-server did not start (${outcome}):\n${log}`);
  }
  return { child, port, version, done };
}

/** Stops nats-server (no error when it is already gone). */
export async function stopNatsServer(server: NatsServer | undefined): Promise<void> {
  if (!server) return;
  try {
    server.child.kill("SIGTERM");
  } catch {
    // already gone
  }
  await server.child.status;
  await server.done;
}

/** Publishes `count` records to a new file-storage stream (untimed) and checks they all landed. */
export async function publishBacklog(
  port: number,
  count: number,
  payloadOf: (index: number) => Uint8Array,
): Promise<void> {
  const nc = await natsV2.connect({ servers: `127.0.0.1:${port}` });
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({
      name: NATS_STREAM,
      subjects: [NATS_SUBJECT],
      storage: natsV2.StorageType.File,
    });
    const js = nc.jetstream();
    let inFlight: Array<Promise<unknown>> = [];
    for (let i = 0; i < count; i++) {
      inFlight.push(js.publish(NATS_SUBJECT, payloadOf(i)));
      if (inFlight.length >= NATS_PUBLISH_WINDOW) {
        await Promise.all(inFlight);
        inFlight = [];
      }
    }
    await Promise.all(inFlight);
    const info = await jsm.streams.info(NATS_STREAM);
    if (info.state.messages !== count) {
      throw new Error(`the stream holds ${info.state.messages} messages, not ${count}`);
    }
  } finally {
    await nc.close();
  }
}

/** The messages of one fetch: sequence and data, whatever the client. */
type _Fetched = AsyncIterable<{ seq: number; data: Uint8Array }>;

/**
 * Drains the whole stream with a new durable pull consumer in fetches of `fetchMessages` (timed
 * from the first fetch), checking every sequence and size.
 */
export async function drainNats(
  port: number,
  config: NatsDrainConfig,
  expected: { count: number; recordBytes: number; name: string },
): Promise<NatsDrain> {
  const consumerConfig = {
    durable_name: expected.name,
    ack_policy: "none",
    deliver_policy: "all",
    max_ack_pending: NATS_MAX_ACK_PENDING,
  } as const;
  const servers = `127.0.0.1:${port}`;
  let fetch: (max: number) => Promise<_Fetched>;
  let close: () => Promise<void>;
  if (config.client === "nats@2") {
    const nc = await natsV2.connect({ servers });
    close = () => nc.close();
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.add(NATS_STREAM, consumerConfig as Partial<natsV2.ConsumerConfig>);
    const consumer = await nc.jetstream().consumers.get(NATS_STREAM, expected.name);
    fetch = (max) => consumer.fetch({ max_messages: max, expires: NATS_FETCH_EXPIRES_MS });
  } else {
    const nc = await connectV3({ servers });
    close = () => nc.close();
    const jsm = await natsV3.jetstreamManager(nc);
    await jsm.consumers.add(NATS_STREAM, consumerConfig as Partial<natsV3.ConsumerConfig>);
    const consumer = await natsV3.jetstream(nc).consumers.get(NATS_STREAM, expected.name);
    fetch = (max) => consumer.fetch({ max_messages: max, expires: NATS_FETCH_EXPIRES_MS });
  }
  try {
    let received = 0;
    const started = performance.now();
    while (received < expected.count) {
      const batch = await fetch(Math.min(config.fetchMessages, expected.count - received));
      const before = received;
      for await (const message of batch) {
        received += 1;
        if (message.seq !== received) throw new Error(`expected seq ${received}, ${message.seq}`);
        if (message.data.byteLength !== expected.recordBytes) throw new Error("bad message size");
      }
      if (received === before) throw new Error(`a fetch after ${received} brought nothing`);
    }
    return { ...config, records: received, seconds: (performance.now() - started) / 1000 };
  } finally {
    await close();
  }
}
