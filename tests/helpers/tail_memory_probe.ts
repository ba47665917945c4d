// A child process for tests/wal/tail_test.ts: fills small-budget tails with frames that
// view large buffers, keeps a WeakRef to every such buffer, forces a full garbage collection, and
// prints one JSON line saying how many bytes of those buffers are still alive. Run:
//   deno run --v8-flags=--expose-gc -A tests/helpers/tail_memory_probe.ts

import { FrameTail } from "../../src/wal/tail.ts";
import { encodeGroupCommit, type PendingAppend } from "../../src/wal/group_commit.ts";
import { frameV3ByteLength } from "../../src/wal/frame.ts";
import { Spool } from "../../src/wal/spool.ts";
import { denoFileSystem, type FileSystem } from "../../src/core/files.ts";
import { wrapFileSystem } from "./wrapped_fs.ts";

/** What the probe prints: live bytes of each scenario, and the bound each must stay within. */
export interface TailMemoryReport {
  /** Group commits pushed straight into a `FrameTail`. */
  tail: { liveBytes: number; boundBytes: number; pushedBytes: number };
  /** A spool reopened on a large newest segment, then appended to. */
  spool: { liveBytes: number; boundBytes: number; pushedBytes: number };
}

const MIB = 1024 * 1024;
const BUDGET_BYTES = 4 * MIB;

const collect = (globalThis as { gc?: () => void }).gc;
if (collect === undefined) throw new Error("run with --v8-flags=--expose-gc");

/** WeakRefs to buffers, each counted once. */
class LiveBuffers {
  #refs = new Map<ArrayBufferLike, WeakRef<ArrayBufferLike>>();
  pushedBytes = 0;

  track(buffer: ArrayBufferLike): void {
    if (this.#refs.has(buffer)) return;
    this.#refs.set(buffer, new WeakRef(buffer));
    this.pushedBytes += buffer.byteLength;
  }

  /**
   * Forgets the strong keys, lets the event loop turn (a WeakRef keeps its target alive until the
   * current job ends), collects, and sums what is still alive.
   */
  async liveBytes(): Promise<number> {
    const refs = [...this.#refs.values()];
    this.#refs.clear();
    await new Promise((resolve) => setTimeout(resolve, 0));
    collect!();
    await new Promise((resolve) => setTimeout(resolve, 0));
    collect!();
    let live = 0;
    for (const ref of refs) live += ref.deref()?.byteLength ?? 0;
    return live;
  }
}

function pending(payloads: Uint8Array[]): PendingAppend<void> {
  let frameBytes = 0;
  for (const payload of payloads) frameBytes += frameV3ByteLength(payload.byteLength);
  return { payloads, frameBytes, resolve: () => {}, reject: () => {} };
}

/** Pushes group commits of 1 MiB records and of many small records into `tail`. */
function fillTail(tail: FrameTail, buffers: LiveBuffers): number {
  let lsn = 0;
  let largest = 0;
  for (let i = 0; i < 48; i++) {
    const big = i % 2 === 0;
    const payloads = big
      ? [new Uint8Array(MIB).fill(i), new Uint8Array(MIB).fill(i)]
      : Array.from({ length: 256 }, () => new Uint8Array(4096).fill(i));
    const { buffer, firstLsn, ends } = encodeGroupCommit([pending(payloads)], {
      term: 1,
      previousLsn: lsn,
      timestampMs: 0,
    });
    buffers.track(buffer.buffer);
    largest = Math.max(largest, buffer.byteLength);
    tail.pushRun(buffer, firstLsn, ends);
    lsn += ends.length;
  }
  return largest;
}

/** A real-disk file system whose reads keep WeakRefs to the buffers they fill. */
function trackingFileSystem(buffers: LiveBuffers): FileSystem {
  return wrapFileSystem(denoFileSystem(), (handle) => ({
    readAt(buffer, position) {
      buffers.track(buffer.buffer);
      return handle.readAt(buffer, position);
    },
  }));
}

/**
 * Writes a 32 MiB segment, reopens it (its scan keeps no frame: the tail starts empty), then
 * appends 128 MiB more, reading each group commit back: everything passes through the tail.
 */
async function fillSpool(walDir: string, buffers: LiveBuffers): Promise<Spool> {
  const options = { walDir, timeline: 1, term: 1, segmentBytesMax: 256 * MIB };
  const writer = await Spool.open({ ...options, tailBytesMax: 0 });
  for (let i = 0; i < 128; i++) await writer.append([new Uint8Array(256 * 1024).fill(i)]);
  await writer.close();
  const fs = trackingFileSystem(buffers);
  const spool = await Spool.open({ ...options, fs, tailBytesMax: BUDGET_BYTES });
  for (let i = 0; i < 128; i++) {
    const payloads = Array.from({ length: 4 }, () => new Uint8Array(256 * 1024).fill(i));
    const { firstLsn, lastLsn } = await spool.append(payloads);
    for (const frame of await spool.readSince(firstLsn - 1, 4, Infinity)) {
      buffers.track(frame.bytes.buffer);
    }
    if (lastLsn !== spool.currentLsn()) throw new Error("unexpected LSNs");
  }
  return spool;
}

async function probeTail(): Promise<TailMemoryReport["tail"]> {
  const buffers = new LiveBuffers();
  const tail = new FrameTail(BUDGET_BYTES);
  const largest = fillTail(tail, buffers);
  const pushedBytes = buffers.pushedBytes;
  const liveBytes = await buffers.liveBytes();
  // The tail must still be alive (and hold recent frames) when the bytes are counted.
  if (tail.count === 0 || tail.lastLsn === undefined) throw new Error("the tail is empty");
  return { liveBytes, boundBytes: BUDGET_BYTES + largest, pushedBytes };
}

async function probeSpool(): Promise<TailMemoryReport["spool"]> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-tail-probe-" });
  try {
    const buffers = new LiveBuffers();
    const spool = await fillSpool(`${dir}/wal`, buffers);
    const pushedBytes = buffers.pushedBytes;
    const liveBytes = await buffers.liveBytes();
    if (spool.stats().tailRecords === 0) throw new Error("the spool's tail is empty");
    await spool.close();
    // One group commit here is 4 records of 256 KiB; a read chunk is at most that large too.
    return { liveBytes, boundBytes: BUDGET_BYTES + MIB + 4 * 1024, pushedBytes };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const report: TailMemoryReport = { tail: await probeTail(), spool: await probeSpool() };
console.log(JSON.stringify(report));
