/**
 * The floor of the write benchmarks: the leanest Deno program that does the same job as
 * `POST /v1/records`, measured in the same run, so ferry's figures read as a share of what Deno
 * itself can do on this machine.
 *
 * - `application/json`: `await req.json()`, each record of `records` as one line of JSON;
 * - `application/x-ndjson`: `await req.text()`, each line parsed with `JSON.parse` (the job of
 *   accepting records) and appended as it came.
 *
 * The lines of every request in flight are appended to one file by one group commit (one `write`
 * and one `fdatasync` for the whole queue), and each request is answered with JSON (its LSNs) only
 * after the `fdatasync` that covers it. No validation, no frames, no checksums, no state, no
 * routing, no auth, no metrics: what ferry does beyond this is its own cost.
 *
 * Run: deno run --allow-net=127.0.0.1:PORT --allow-read=FILE --allow-write=FILE \
 *   bench/write_floor.ts --port PORT --file FILE
 * It prints `listening` on stdout once it serves.
 */

const _encoder = new TextEncoder();

interface _Pending {
  bytes: Uint8Array;
  count: number;
  resolve: (firstLsn: number) => void;
}

/**
 * One appender: every queued request goes out with one write and one fdatasync. `onDurable`, when
 * given, sees each group commit's bytes and last LSN once they are durable (the stream floor sends
 * them on).
 */
export class GroupCommitFile {
  #file: Deno.FsFile;
  #onDurable: ((bytes: Uint8Array, lastLsn: number) => void) | undefined;
  #queue: _Pending[] = [];
  #draining = false;
  #lsn = 0;

  constructor(file: Deno.FsFile, onDurable?: (bytes: Uint8Array, lastLsn: number) => void) {
    this.#file = file;
    this.#onDurable = onDurable;
  }

  /** Resolves with the first LSN of `count` records once `bytes` are durable. */
  append(bytes: Uint8Array, count: number): Promise<number> {
    return new Promise((resolve) => {
      this.#queue.push({ bytes, count, resolve });
      if (!this.#draining) {
        this.#draining = true;
        queueMicrotask(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0);
      let total = 0;
      for (const pending of batch) total += pending.bytes.byteLength;
      const buffer = new Uint8Array(total);
      let offset = 0;
      for (const pending of batch) {
        buffer.set(pending.bytes, offset);
        offset += pending.bytes.byteLength;
      }
      let written = 0;
      while (written < total) written += await this.#file.write(buffer.subarray(written));
      await this.#file.syncData();
      for (const pending of batch) {
        pending.resolve(this.#lsn + 1);
        this.#lsn += pending.count;
      }
      this.#onDurable?.(buffer, this.#lsn);
    }
    this.#draining = false;
  }
}

async function _lines(request: Request): Promise<{ text: string; count: number }> {
  if (request.headers.get("content-type") === "application/x-ndjson") {
    const text = await request.text();
    let count = 0;
    for (const line of text.split("\n")) {
      if (line.length === 0) continue;
      JSON.parse(line);
      count += 1;
    }
    return { text: text.endsWith("\n") ? text : text + "\n", count };
  }
  const body = await request.json() as { records: unknown[] };
  let text = "";
  for (const record of body.records) text += JSON.stringify(record) + "\n";
  return { text, count: body.records.length };
}

/** The value of `--name` among the program's arguments; throws when it is missing. */
export function floorFlag(name: string): string {
  const index = Deno.args.indexOf(`--${name}`);
  const value = index >= 0 ? Deno.args[index + 1] : undefined;
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}

if (import.meta.main) {
  const file = await Deno.open(floorFlag("file"), { create: true, append: true });
  const appender = new GroupCommitFile(file);
  Deno.serve({
    hostname: "127.0.0.1",
    port: Number(floorFlag("port")),
    onListen: () => console.log("listening"),
  }, async (request) => {
    const { text, count } = await _lines(request);
    const firstLsn = await appender.append(_encoder.encode(text), count);
    return Response.json({ first_lsn: firstLsn, last_lsn: firstLsn + count - 1 });
  });
}
