/**
 * Read-ahead for replicas catching up from the segment files: when a raw range read stops because
 * the pull's budget is full, the bytes the same reader will most likely ask for next (the same
 * size, from where it stopped, never past the durable end) are read in the background while the
 * reader checks what it got. Its next pull starts at the LSN after the last one it received: if
 * that is an entry here, the range read starts from these bytes instead of a read of its own (and
 * walks and checks their headers as always). Entries are taken once, expire, are bounded in count
 * and bytes, and are dropped when the files change under them (a truncation, their segment pruned).
 *
 * @module
 */

import type { FileSystem } from "../core/files.ts";
import { READ_AHEAD_BYTES_MAX, READ_AHEAD_ENTRIES_MAX, READ_AHEAD_TTL_MS } from "../core/limits.ts";
import type { Segment } from "./segment.ts";

/** Bytes read ahead from `offset` of a segment, where the frame of `lsn` starts. */
export interface ReadAheadBytes {
  offset: number;
  /** The bytes, or undefined when the read failed or came back short (then read as usual). */
  bytes: Promise<Uint8Array | undefined>;
}

interface _Entry extends ReadAheadBytes {
  segment: Segment;
  lsn: number;
  size: number;
  atMs: number;
}

/** The read-ahead entries of one segment set. */
export class ReadAhead {
  #entries: _Entry[] = [];
  #bytes = 0;
  #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Entries held and their bytes (for tests and status). */
  get stats(): { entries: number; bytes: number } {
    return { entries: this.#entries.length, bytes: this.#bytes };
  }

  /** The entry of `segment` that starts at `lsn`, removed; undefined when there is none. */
  take(segment: Segment, lsn: number): ReadAheadBytes | undefined {
    this.#expire();
    const at = this.#entries.findIndex((e) => e.segment === segment && e.lsn === lsn);
    if (at < 0) return undefined;
    const [entry] = this.#entries.splice(at, 1);
    this.#bytes -= entry!.size;
    return entry;
  }

  /** Starts reading `size` bytes of `segment` from `offset`, where the frame of `lsn` starts. */
  schedule(fs: FileSystem, segment: Segment, at: { offset: number; lsn: number; size: number }) {
    const { offset, lsn, size } = at;
    if (size <= 0 || size > READ_AHEAD_BYTES_MAX) return;
    this.#expire();
    if (this.#entries.some((e) => e.segment === segment && e.lsn === lsn)) return;
    while (
      this.#entries.length >= READ_AHEAD_ENTRIES_MAX || this.#bytes + size > READ_AHEAD_BYTES_MAX
    ) {
      this.#bytes -= this.#entries.shift()!.size;
    }
    const bytes = _read(fs, segment.path, offset, size);
    this.#entries.push({ segment, lsn, offset, size, bytes, atMs: this.#now() });
    this.#bytes += size;
  }

  /** Drops the entries of `segments` (pruned). */
  drop(segments: readonly Segment[]): void {
    const gone = new Set(segments);
    for (const entry of this.#entries.filter((e) => gone.has(e.segment))) this.#bytes -= entry.size;
    this.#entries = this.#entries.filter((e) => !gone.has(e.segment));
  }

  /** Drops every entry (the files changed: a truncation, a close). */
  clear(): void {
    this.#entries = [];
    this.#bytes = 0;
  }

  #expire(): void {
    const oldest = this.#now() - READ_AHEAD_TTL_MS;
    while (this.#entries.length > 0 && this.#entries[0]!.atMs < oldest) {
      this.#bytes -= this.#entries.shift()!.size;
    }
  }
}

/** The bytes, or undefined on any failure or a short read (never rejects). */
async function _read(
  fs: FileSystem,
  path: string,
  offset: number,
  size: number,
): Promise<Uint8Array | undefined> {
  try {
    const file = await fs.open(path);
    try {
      const buffer = new Uint8Array(size);
      const got = await file.readAt(buffer, offset);
      return got === size ? buffer : undefined;
    } finally {
      file.close();
    }
  } catch {
    return undefined;
  }
}
