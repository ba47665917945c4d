/**
 * The catch-up floor (bench/replication_bench.ts "catchup"): the leanest Deno program that serves
 * the same frames to the same client. It loads a spool's segment files into one buffer, notes
 * where each record starts, and answers `GET /v1/wal?since_lsn=&max_count=` with `Deno.serve`: the
 * byte range of that buffer holding the records, and the headers `FerryClient.pullFrames` reads.
 * No auth, no slots, no long-poll, no file reads after start-up: what is left is HTTP and the
 * client.
 *
 * `deno run --allow-read=<wal dir> --allow-net=127.0.0.1:<port> bench/catchup_floor.ts <port> <wal dir>`
 * prints one line `{"ready": true, "records": n, "bytes": n}` once it listens.
 */

import { frameHeaderAt } from "../src/wal/frame.ts";
import {
  FRAMES_MEDIA_TYPE,
  HEADER_CURRENT_LSN,
  HEADER_OLDEST_LSN,
  HEADER_RECORD_COUNT,
  HEADER_START_LSN,
  HEADER_TERM,
  HEADER_TIMELINE,
} from "../src/model/wire.ts";
import { PULL_RECORDS_DEFAULT, PULL_RECORDS_MAX } from "../src/core/limits.ts";

/** The frames of every segment file of `walDir` (sorted by name), in one buffer. */
async function loadFrames(walDir: string): Promise<Uint8Array> {
  const names = (await Array.fromAsync(Deno.readDir(walDir)))
    .filter((entry) => entry.isFile && entry.name.endsWith(".wal"))
    .map((entry) => entry.name)
    .sort();
  const files = await Promise.all(names.map((name) => Deno.readFile(`${walDir}/${name}`)));
  const buffer = new Uint8Array(files.reduce((sum, file) => sum + file.byteLength, 0));
  let offset = 0;
  for (const file of files) {
    buffer.set(file, offset);
    offset += file.byteLength;
  }
  return buffer;
}

/** `starts[i]` = offset of the record with LSN i + 1; `starts[count]` = the end. */
function recordStarts(frames: Uint8Array): Float64Array {
  const view = new DataView(frames.buffer, frames.byteOffset, frames.byteLength);
  const starts: number[] = [];
  let offset = 0;
  while (offset < frames.byteLength) {
    const header = frameHeaderAt(frames, view, offset);
    if (header.status !== "ok") throw new Error(`frame at ${offset}: ${header.status}`);
    if (header.lsn !== starts.length + 1) throw new Error(`LSN ${header.lsn} at ${offset}`);
    starts.push(offset);
    offset += header.byteLength;
  }
  starts.push(offset);
  return Float64Array.from(starts);
}

async function main(): Promise<void> {
  const [portText, walDir] = Deno.args;
  const frames = await loadFrames(walDir!);
  const starts = recordStarts(frames);
  const count = starts.length - 1;
  const fixedHeaders = {
    "content-type": FRAMES_MEDIA_TYPE,
    [HEADER_CURRENT_LSN]: String(count),
    [HEADER_OLDEST_LSN]: "1",
    [HEADER_TERM]: "1",
    [HEADER_TIMELINE]: "1",
  };
  Deno.serve({
    hostname: "127.0.0.1",
    port: Number(portText),
    onListen() {
      console.log(JSON.stringify({ ready: true, records: count, bytes: frames.byteLength }));
    },
  }, (request) => {
    const query = new URL(request.url).searchParams;
    const since = Math.min(count, Number(query.get("since_lsn") ?? "0"));
    const wanted = Number(query.get("max_count") ?? String(PULL_RECORDS_DEFAULT));
    const last = Math.min(count, since + Math.min(PULL_RECORDS_MAX, wanted));
    const body = frames.subarray(starts[since]!, starts[last]!) as Uint8Array<ArrayBuffer>;
    return new Response(body, {
      headers: {
        ...fixedHeaders,
        [HEADER_START_LSN]: String(since),
        [HEADER_RECORD_COUNT]: String(last - since),
      },
    });
  });
}

if (import.meta.main) await main();
