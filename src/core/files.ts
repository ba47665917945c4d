/**
 * The narrow file layer the spool and the slot catalog write through. Production uses
 * `denoFileSystem()`; tests substitute layers that count reads, fill the disk, or cut the power.
 *
 * Every path is absolute or relative to the working directory; every operation needs
 * `--allow-read` (and `--allow-write` for writes) on that path.
 *
 * @module
 */

import { BLOCKING_IO_BYTES_MAX } from "./limits.ts";
/** An open file with positional reads and writes. Not safe for concurrent use: one owner each. */
export interface FileHandle {
  /** Reads into `buffer` from `position`; returns the bytes read (fewer only at end of file). */
  readAt(buffer: Uint8Array, position: number): Promise<number>;
  /** Writes all of `data` at `position`. On failure some prefix may have been written. */
  writeAt(data: Uint8Array, position: number): Promise<void>;
  /** fdatasync: the written bytes (and the size) are on disk when this resolves. */
  syncData(): Promise<void>;
  /**
   * The same fdatasync on the calling thread, blocking it until the bytes are on disk. Layers that
   * only intercept `syncData` leave it out, and callers then use `syncData`.
   */
  syncDataNow?(): void;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): void;
}

/** Options of `FileSystem.open`. */
export interface OpenOptions {
  write?: boolean;
  create?: boolean;
  /** Fail with `AlreadyExists` when the file exists (only with `create`). */
  createNew?: boolean;
}

/** The file operations ferry's durable stores need. */
export interface FileSystem {
  open(path: string, options?: OpenOptions): Promise<FileHandle>;
  /** Names (not paths) of the entries of a directory. */
  readDir(path: string): Promise<string[]>;
  /** Creates a directory and its parents; no error when it exists. */
  mkdirp(path: string): Promise<void>;
  remove(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** fsync of a directory, so creations, renames and deletions in it are durable. */
  syncDir(path: string): Promise<void>;
  /** Size of a file without opening or reading it (metadata only). */
  sizeOf(path: string): Promise<number>;
}

/** Joins path parts with "/" (ferry's paths are POSIX). */
export function joinPath(...parts: string[]): string {
  return parts.filter((part) => part.length > 0).join("/").replace(/\/{2,}/g, "/");
}

/** The parent directory of a path. */
export function parentDir(path: string): string {
  const index = path.lastIndexOf("/");
  if (index < 0) return ".";
  return index === 0 ? "/" : path.slice(0, index);
}

class _DenoFileHandle implements FileHandle {
  #file: Deno.FsFile;
  #position = 0;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  async #seek(position: number): Promise<void> {
    if (position !== this.#position) {
      await this.#file.seek(position, Deno.SeekMode.Start);
      this.#position = position;
    }
  }

  async readAt(buffer: Uint8Array, position: number): Promise<number> {
    await this.#seek(position);
    let filled = 0;
    try {
      while (filled < buffer.byteLength) {
        const count = await this.#file.read(buffer.subarray(filled));
        if (count === null) break;
        filled += count;
        this.#position += count;
      }
    } catch (error) {
      this.#position = -1;
      throw error;
    }
    return filled;
  }

  async writeAt(data: Uint8Array, position: number): Promise<void> {
    const blocking = data.byteLength <= BLOCKING_IO_BYTES_MAX;
    let written = 0;
    try {
      if (position !== this.#position) {
        if (blocking) this.#file.seekSync(position, Deno.SeekMode.Start);
        else await this.#file.seek(position, Deno.SeekMode.Start);
        this.#position = position;
      }
      while (written < data.byteLength) {
        const rest = data.subarray(written);
        const count = blocking ? this.#file.writeSync(rest) : await this.#file.write(rest);
        written += count;
        this.#position += count;
      }
    } catch (error) {
      // The file position is unknown after a failed write; seek again before the next call.
      this.#position = -1;
      throw error;
    }
  }

  syncData(): Promise<void> {
    return this.#file.syncData();
  }

  syncDataNow(): void {
    this.#file.syncDataSync();
  }

  async truncate(length: number): Promise<void> {
    await this.#file.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.#file.stat()).size;
  }

  close(): void {
    this.#file.close();
  }
}

/**
 * Replaces the file at `path` with `bytes` atomically: a temp file beside it is written and
 * fdatasynced, renamed over `path`, and the directory fsynced. A crash leaves the old file or the
 * new one, never a mix. With `syncDir: false` the caller fsyncs the directory itself, right after
 * (one fsync for several changes of one directory). Needs read and write access to the directory
 * of `path`.
 */
export async function writeFileAtomic(
  fs: FileSystem,
  path: string,
  bytes: Uint8Array,
  options: { syncDir?: boolean } = {},
): Promise<void> {
  const temp = path + ".tmp";
  const file = await fs.open(temp, { write: true, create: true });
  try {
    await file.truncate(0);
    await file.writeAt(bytes, 0);
    await file.syncData();
  } finally {
    file.close();
  }
  await fs.rename(temp, path);
  if (options.syncDir ?? true) await fs.syncDir(parentDir(path));
}

/**
 * The whole content of a small file, or undefined when it does not exist or is larger than
 * `bytesMax` (a file that cannot be what the caller expects). Needs read access to `path`.
 */
export async function readFileIfExists(
  fs: FileSystem,
  path: string,
  bytesMax: number,
): Promise<Uint8Array | undefined> {
  let file: FileHandle;
  try {
    file = await fs.open(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    const size = await file.size();
    if (size > bytesMax) return undefined;
    const bytes = new Uint8Array(size);
    const got = await file.readAt(bytes, 0);
    return bytes.subarray(0, got);
  } finally {
    file.close();
  }
}

/** The real file system, through Deno's file APIs. */
export function denoFileSystem(): FileSystem {
  return {
    async open(path, options = {}) {
      const file = await Deno.open(path, {
        read: true,
        write: options.write ?? false,
        create: options.create ?? false,
        createNew: options.createNew ?? false,
      });
      return new _DenoFileHandle(file);
    },
    async readDir(path) {
      const names: string[] = [];
      for await (const entry of Deno.readDir(path)) names.push(entry.name);
      return names;
    },
    async mkdirp(path) {
      await Deno.mkdir(path, { recursive: true });
    },
    async remove(path) {
      await Deno.remove(path);
    },
    async rename(from, to) {
      await Deno.rename(from, to);
    },
    async syncDir(path) {
      const dir = await Deno.open(path, { read: true });
      try {
        await dir.sync();
      } finally {
        dir.close();
      }
    },
    sizeOf(path) {
      // Metadata only, a few microseconds: the blocking call skips the thread-pool hop, which is
      // most of the cost of sizing hundreds of sealed segments at open.
      return Promise.resolve(Deno.statSync(path).size);
    },
  };
}
