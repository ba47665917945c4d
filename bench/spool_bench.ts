/**
 * Spool benchmark: durable appends/s of 128-byte records at 1, 16 and 256 concurrent appenders
 * through group commit, against a naive "write + fdatasync per record" loop measured in the same
 * run on the same disk; and the spool's open time with 10 vs 200 sealed segments (open must not
 * read sealed segments, so it should not grow with their number).
 *
 * Run: deno task bench spool
 */

import { Spool } from "../src/wal/spool.ts";
import { encodeFrameV3 } from "../src/wal/frame.ts";
import { denoFileSystem, type FileSystem } from "../src/core/files.ts";
import { MIB_BYTES } from "../src/core/limits.ts";
import { appendResults, formatNumber } from "./results.ts";

/**
 * Segment size of the preallocation comparison: large enough that no run rolls a segment, so both
 * variants measure the same thing (write + fdatasync into one file) and nothing else.
 */
const PREALLOCATED_SEGMENT_BYTES = 512 * MIB_BYTES;
const ZERO_CHUNK_BYTES = 8 * MIB_BYTES;

/**
 * Simulated preallocation, for the measurement only: a new segment file is filled with zeros up to
 * `bytes` and fdatasynced before use, so group commits overwrite allocated blocks instead of
 * growing the file (fdatasync then has no size or extent change to write). The handle reports the
 * logical size (the end of what was written), as a preallocating spool would track it.
 */
function preallocatingFileSystem(bytes: number): FileSystem {
  const inner = denoFileSystem();
  return {
    ...inner,
    async open(path, options) {
      const handle = await inner.open(path, options);
      if (!options?.create || !path.endsWith(".wal") || await handle.size() !== 0) return handle;
      const zeros = new Uint8Array(ZERO_CHUNK_BYTES);
      for (let at = 0; at < bytes; at += ZERO_CHUNK_BYTES) await handle.writeAt(zeros, at);
      await handle.syncData();
      let logical = 0;
      return {
        readAt: (buffer, position) => handle.readAt(buffer, position),
        async writeAt(data, position) {
          await handle.writeAt(data, position);
          logical = Math.max(logical, position + data.byteLength);
        },
        syncData: () => handle.syncData(),
        truncate(length) {
          logical = length;
          return Promise.resolve();
        },
        size: () => Promise.resolve(logical),
        close: () => handle.close(),
      };
    },
  };
}

const RECORD_BYTES = 128;
const RUN_MS = 3000;
const CONCURRENCIES = [1, 16, 256];

const record = new Uint8Array(RECORD_BYTES).fill(0x61);

async function naiveLoop(dir: string): Promise<number> {
  const file = await Deno.open(`${dir}/naive.wal`, { create: true, write: true });
  let count = 0;
  const started = performance.now();
  while (performance.now() - started < RUN_MS) {
    count += 1;
    const frame = encodeFrameV3({
      term: 1,
      ownershipEpoch: 0,
      lsn: count,
      timestampMs: Date.now(),
      payload: record,
    });
    let written = 0;
    while (written < frame.byteLength) written += await file.write(frame.subarray(written));
    await file.syncData();
  }
  const seconds = (performance.now() - started) / 1000;
  file.close();
  return count / seconds;
}

async function groupCommit(
  dir: string,
  concurrency: number,
  options: { preallocate?: boolean; segmentBytesMax?: number } = {},
): Promise<{ rate: number; batch: number }> {
  const batches: number[] = [];
  const spool = await Spool.open({
    walDir: `${dir}/wal-${concurrency}${options.preallocate ? "-pre" : ""}`,
    timeline: 1,
    term: 1,
    segmentBytesMax: options.segmentBytesMax,
    fs: options.preallocate ? preallocatingFileSystem(PREALLOCATED_SEGMENT_BYTES) : undefined,
    observer: { groupCommitRecords: (n) => batches.push(n) },
  });
  let count = 0;
  let stop = false;
  const started = performance.now();
  const appenders = Array.from({ length: concurrency }, async () => {
    while (!stop) {
      await spool.append([record]);
      count += 1;
    }
  });
  await new Promise((resolve) => setTimeout(resolve, RUN_MS));
  stop = true;
  await Promise.all(appenders);
  const seconds = (performance.now() - started) / 1000;
  await spool.close();
  const batch = batches.reduce((a, b) => a + b, 0) / Math.max(1, batches.length);
  return { rate: count / seconds, batch };
}

async function openTime(dir: string, sealedSegments: number): Promise<number> {
  const walDir = `${dir}/open-${sealedSegments}`;
  const options = { walDir, timeline: 1, term: 1, segmentBytesMax: 64 * 1024 };
  const spool = await Spool.open(options);
  const big = new Uint8Array(64 * 1024).fill(0x62); // one record fills one segment
  for (let i = 0; i < sealedSegments; i++) await spool.append([big]);
  await spool.close();
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    const reopened = await Spool.open(options);
    samples.push(performance.now() - started);
    await reopened.close();
  }
  return samples.sort((a, b) => a - b)[2]!;
}

/**
 * Preallocated segments vs growing ones, same run, alternating: is fdatasync of an overwrite
 * cheaper enough to pay for writing every segment twice (zeros first)?
 */
async function preallocationLines(dir: string): Promise<string[]> {
  const lines = [
    "",
    `Preallocation (simulated: each segment zero-filled to ${
      PREALLOCATED_SEGMENT_BYTES / MIB_BYTES
    } MiB and fdatasynced before use, not timed; no roll during a run), same run, alternating:`,
    "",
    "| appenders | growing file records/s | preallocated records/s | preallocated / growing |",
    "|---:|---:|---:|---:|",
  ];
  const segmentBytesMax = PREALLOCATED_SEGMENT_BYTES;
  for (const concurrency of CONCURRENCIES) {
    const growing = await groupCommit(dir, concurrency, { segmentBytesMax });
    const preallocated = await groupCommit(dir, concurrency, {
      segmentBytesMax,
      preallocate: true,
    });
    const ratio = preallocated.rate / growing.rate;
    console.log(
      `${concurrency} appenders: growing ${formatNumber(growing.rate)}/s, preallocated ${
        formatNumber(preallocated.rate)
      }/s (x${ratio.toFixed(2)})`,
    );
    lines.push(
      `| ${concurrency} | ${formatNumber(growing.rate)} | ${formatNumber(preallocated.rate)} | ${
        ratio.toFixed(2)
      } |`,
    );
  }
  return lines;
}

export async function runSpoolBench(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-", dir: "." });
  try {
    const naive = await naiveLoop(dir);
    console.log(`naive write+fdatasync per record: ${formatNumber(naive)} records/s`);
    const lines = [
      `Durable appends of ${RECORD_BYTES}-byte records, ${
        RUN_MS / 1000
      } s each, on the local disk.`,
      "",
      "| appenders | records/s | mean records per group commit | ratio vs naive loop |",
      "|---:|---:|---:|---:|",
      `| naive loop (write + fdatasync per record) | ${formatNumber(naive)} | 1 | 1.00 |`,
    ];
    for (const concurrency of CONCURRENCIES) {
      const { rate, batch } = await groupCommit(dir, concurrency);
      const ratio = rate / naive;
      console.log(
        `group commit, ${concurrency} appenders: ${formatNumber(rate)} records/s (x${
          ratio.toFixed(2)
        }, batch ${batch.toFixed(1)})`,
      );
      lines.push(
        `| ${concurrency} | ${formatNumber(rate)} | ${batch.toFixed(1)} | ${ratio.toFixed(2)} |`,
      );
    }
    lines.push(...await preallocationLines(dir));
    const open10 = await openTime(dir, 10);
    const open200 = await openTime(dir, 200);
    console.log(
      `open with 10 sealed segments: ${open10.toFixed(2)} ms; with 200: ${open200.toFixed(2)} ms`,
    );
    lines.push(
      "",
      `Spool open (median of 5): ${open10.toFixed(2)} ms with 10 sealed segments, ${
        open200.toFixed(2)
      } ms with 200 (ratio ${
        (open200 / open10).toFixed(2)
      }; sealed segments are listed and sized, never read).`,
    );
    await appendResults("Spool: group commit vs naive fdatasync loop", lines);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await runSpoolBench();
