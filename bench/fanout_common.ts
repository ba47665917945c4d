/**
 * The fan-out load that `fanout_bench.ts` measures and `fanout_profile.ts` and `fanout_streams.ts`
 * take apart: 100 replicas in 2 reader processes following one server while one open-loop writer
 * sends 1 000 single-record writes a second.
 */

import type { ReadersOutput } from "./fanout_peers.ts";
import { type Peer, spawnPeer } from "./proc_stats.ts";

export const FANOUT_REPLICAS = 100;
export const FANOUT_WRITES_PER_SECOND = 1000;
/** Reader processes the replicas are spread over (the machine has 2 cores). */
export const FANOUT_READER_PROCESSES = 2;
/**
 * Time between spawning the readers and the first write: the readers report the CPU they use from
 * then on themselves (a process that has exited has no /proc entry left to read).
 */
export const FANOUT_READERS_LEAD_MS = 12_000;
/** The ferry side's peer processes (readers and writer). */
export const FANOUT_PEERS = "bench/fanout_peers.ts";

/** `replicas` ids `<prefix>-<i>`, dealt round-robin over the reader processes. */
export function readerGroups(prefix: string, replicas: number): string[][] {
  const ids = Array.from({ length: replicas }, (_, i) => `${prefix}-${i}`);
  return Array.from(
    { length: FANOUT_READER_PROCESSES },
    (_, p) => ids.filter((_, i) => i % FANOUT_READER_PROCESSES === p),
  );
}

/** The ferry reader processes: each follows `base` for its group of replica ids. */
export function spawnFerryReaders(
  base: string,
  load: {
    mode: "stream" | "poll";
    groups: string[][];
    untilLsn: number;
    measureFromMs: number;
    deadlineMs: number;
  },
): Peer[] {
  const flags = [`--allow-net=${new URL(base).host}`];
  const { groups, ...task } = load;
  return groups.map((ids) =>
    spawnPeer(FANOUT_PEERS, flags, { role: "readers", base, ids, ...task })
  );
}

/** Visits every (LSN, received at) the replicas recorded: the receipts `lags` of fanout_bench takes. */
export function receiptsOf(
  replicas: ReadersOutput["replicas"],
): (visit: (lsn: number, receivedMs: number) => void) => void {
  return (visit) => {
    for (const replica of replicas) {
      for (const [first, last, at] of replica.receipts) {
        for (let lsn = first; lsn <= last; lsn++) visit(lsn, at);
      }
    }
  };
}
