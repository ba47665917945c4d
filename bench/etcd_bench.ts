/**
 * etcd client benchmark (SPEC 13.4 lets a node use etcd's JSON gateway or a client library): the
 * round trips a ferry node makes (a lease keepalive every quarter TTL, the leader-key read every
 * poll, a put, a transaction) through ferry's gateway client, and the same calls through the gRPC
 * client library `etcd3` (npm), against one etcd on loopback, in one run.
 *
 * Run: deno task bench etcd [--quick]
 */

import { quickMode } from "./args.ts";
import { Etcd3 } from "etcd3";
import { EtcdClient } from "../src/cluster/etcd.ts";
import { startEtcd } from "../tests/helpers/etcd.ts";
import { appendResults, formatNumber, percentile } from "./results.ts";

const CALLS = 2_000;
const QUICK_CALLS = 200;
const WARMUP_CALLS = 50;

interface Timing {
  p50: number;
  p99: number;
}

async function time(calls: number, call: (i: number) => Promise<unknown>): Promise<Timing> {
  for (let i = 0; i < WARMUP_CALLS; i++) await call(i);
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await call(i);
    samples.push(performance.now() - start);
  }
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** Runs the comparison and appends it to bench/RESULTS.md. */
export async function runEtcdBench(): Promise<void> {
  const calls = quickMode() ? QUICK_CALLS : CALLS;
  const etcd = await startEtcd();
  const gateway = new EtcdClient({ endpoints: [etcd.url] });
  const grpc = new Etcd3({ hosts: etcd.url });
  try {
    const lease = await gateway.grantLease(60);
    const grpcLease = grpc.lease(60, { autoKeepAlive: false });
    await grpcLease.grant();
    const rows: Array<[string, Timing, Timing]> = [
      [
        "lease keepalive",
        await time(calls, () => gateway.keepAlive(lease.id)),
        await time(calls, () => grpcLease.keepaliveOnce()),
      ],
      [
        "read the leader key",
        await time(calls, () => gateway.get("ferry/bench/leader")),
        await time(calls, () => grpc.get("ferry/bench/leader").string()),
      ],
      [
        "put (etcd fsyncs its log)",
        await time(calls, (i) => gateway.put("ferry/bench/slots", String(i))),
        await time(calls, (i) => grpc.put("ferry/bench/slots").value(String(i)).exec()),
      ],
      [
        "create-if-absent transaction",
        await time(calls, () =>
          gateway.txn(
            [{ key: "ferry/bench/leader", target: "CREATE", createRevision: "0" }],
            [{ put: { key: "ferry/bench/other", value: "x" } }],
          )),
        await time(calls, () =>
          grpc.if("ferry/bench/leader", "Create", "==", 0)
            .then(grpc.put("ferry/bench/other").value("x")).commit()),
      ],
    ];
    await grpcLease.revoke();
    const lines = [
      `${formatNumber(calls)} sequential calls each, after ${WARMUP_CALLS} warm-up calls; ` +
      "milliseconds.",
      "",
      "| call | JSON gateway p50 | p99 | etcd3 (gRPC) p50 | p99 | gateway / gRPC (p50) |",
      "|---|---|---|---|---|---|",
      ...rows.map(([name, ours, theirs]) =>
        `| ${name} | ${ours.p50.toFixed(3)} | ${ours.p99.toFixed(3)} | ${theirs.p50.toFixed(3)} | ${
          theirs.p99.toFixed(3)
        } | ${(ours.p50 / theirs.p50).toFixed(2)} |`
      ),
    ];
    console.log(lines.join("\n"));
    await appendResults("etcd: JSON gateway vs gRPC client", lines);
  } finally {
    gateway.close();
    grpc.close();
    await etcd.stop();
  }
}
