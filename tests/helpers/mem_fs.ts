/**
 * An in-memory `FileSystem` with the failure modes of a real disk, for tests:
 *
 * - `powerCut(random)`: every file falls back to what its last `syncData` made durable plus a random
 *   prefix of what was written since (a torn tail), and every directory to the entries its last
 *   `syncDir` made durable (unsynced creations vanish, unsynced deletions come back). Handles
 *   opened before the cut stop working, as if the process died.
 * - `cutAfterOps`: the power is cut by the N-th operation from now (which fails, as do all later
 *   ones until `powerCut` is called), so a test can stop a writer at an arbitrary point.
 * - `capacityBytes`: writes past it write what fits and fail with ENOSPC.
 * - `reads`: every `readAt` as `{path, position, length}`.
 */

import type { FileHandle, FileSystem, OpenOptions } from "../../src/core/files.ts";
import { parentDir } from "../../src/core/files.ts";

class _MemFile {
  bytes = new Uint8Array(0);
  length = 0;
  durable = new Uint8Array(0);

  view(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }

  ensureCapacity(length: number): void {
    if (length <= this.bytes.byteLength) return;
    const grown = new Uint8Array(Math.max(length, this.bytes.byteLength * 2, 1024));
    grown.set(this.view());
    this.bytes = grown;
  }
}

/** An error shaped like Deno's for a full disk. */
export function enospcError(): Error {
  return Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
}

export class MemFs implements FileSystem {
  /** Total bytes all files may hold; a write past it is partial and fails with ENOSPC. */
  capacityBytes = Infinity;
  /** Operations left before the power is cut (Infinity: never). */
  cutAfterOps = Infinity;
  reads: Array<{ path: string; position: number; length: number }> = [];
  /** Count of `writeAt` and `syncData` calls. */
  writes = 0;
  syncs = 0;
  /** Of `syncs`, those made with `syncDataNow` (on the calling thread). */
  inlineSyncs = 0;
  /** When set, the next `syncData` or `syncDataNow` fails with EIO (and clears this flag). */
  failNextSync = false;
  #files = new Map<string, _MemFile>();
  #durableEntries = new Map<string, Map<string, _MemFile>>();
  #dirs = new Set<string>(["/", "."]);
  #generation = 0;
  #dead = false;

  /** Bytes currently held by all files. */
  usedBytes(): number {
    let total = 0;
    for (const file of this.#files.values()) total += file.length;
    return total;
  }

  /** Paths of the files that exist now. */
  paths(): string[] {
    return [...this.#files.keys()].sort();
  }

  /** Current contents of a file (a copy). */
  contents(path: string): Uint8Array {
    const file = this.#files.get(path);
    if (!file) throw new Deno.errors.NotFound(path);
    return file.view().slice();
  }

  /** Replaces a file's contents, durable at once (for setting up damaged files). */
  setContents(path: string, bytes: Uint8Array): void {
    const file = this.#files.get(path) ?? new _MemFile();
    file.bytes = bytes.slice();
    file.length = bytes.byteLength;
    file.durable = bytes.slice();
    this.#files.set(path, file);
    for (let dir = parentDir(path); !this.#dirs.has(dir); dir = parentDir(dir)) this.#dirs.add(dir);
    this.#entriesOf(parentDir(path)).set(path, file);
  }

  /** Was the power cut (by `cutAfterOps`) and not yet restored? */
  get isDead(): boolean {
    return this.#dead;
  }

  /** Cuts the power: see the module comment. `random` decides how much unsynced data survives. */
  powerCut(random: () => number): void {
    this.#generation += 1;
    this.#dead = false;
    this.cutAfterOps = Infinity;
    const survivors = new Map<string, _MemFile>();
    for (const entries of this.#durableEntries.values()) {
      for (const [path, file] of entries) survivors.set(path, file);
    }
    for (const file of survivors.values()) _revertFile(file, random);
    this.#files = survivors;
  }

  #entriesOf(dir: string): Map<string, _MemFile> {
    let entries = this.#durableEntries.get(dir);
    if (!entries) {
      entries = new Map();
      this.#durableEntries.set(dir, entries);
    }
    return entries;
  }

  /** Counts one operation towards a cut; throws once the power is off. */
  tick(generation = this.#generation): void {
    if (generation !== this.#generation) {
      throw new Deno.errors.BadResource("handle from before a power cut");
    }
    if (this.#dead) throw new Deno.errors.Interrupted("power is off");
    this.cutAfterOps -= 1;
    if (this.cutAfterOps <= 0) {
      this.#dead = true;
      throw new Deno.errors.Interrupted("power cut");
    }
  }

  open(path: string, options: OpenOptions = {}): Promise<FileHandle> {
    this.tick();
    let file = this.#files.get(path);
    if (file && options.createNew) return Promise.reject(new Deno.errors.AlreadyExists(path));
    if (!file) {
      if (!options.create) return Promise.reject(new Deno.errors.NotFound(path));
      if (!this.#dirs.has(parentDir(path))) {
        return Promise.reject(new Deno.errors.NotFound(parentDir(path)));
      }
      file = new _MemFile();
      this.#files.set(path, file);
    }
    return Promise.resolve(
      new _MemHandle(this, path, file, this.#generation, options.write ?? false),
    );
  }

  readDir(path: string): Promise<string[]> {
    this.tick();
    if (!this.#dirs.has(path)) return Promise.reject(new Deno.errors.NotFound(path));
    const names = [...this.#files.keys()]
      .filter((p) => parentDir(p) === path)
      .map((p) => p.slice(path.length + 1));
    return Promise.resolve(names);
  }

  mkdirp(path: string): Promise<void> {
    this.tick();
    // Directories are durable at once: ferry's stores fsync the entries inside them, not their own.
    let current = path;
    while (!this.#dirs.has(current)) {
      this.#dirs.add(current);
      current = parentDir(current);
    }
    return Promise.resolve();
  }

  remove(path: string): Promise<void> {
    this.tick();
    if (!this.#files.delete(path)) return Promise.reject(new Deno.errors.NotFound(path));
    return Promise.resolve();
  }

  rename(from: string, to: string): Promise<void> {
    this.tick();
    const file = this.#files.get(from);
    if (!file) return Promise.reject(new Deno.errors.NotFound(from));
    this.#files.delete(from);
    this.#files.set(to, file);
    return Promise.resolve();
  }

  syncDir(path: string): Promise<void> {
    this.tick();
    const entries = new Map<string, _MemFile>();
    for (const [p, file] of this.#files) if (parentDir(p) === path) entries.set(p, file);
    this.#durableEntries.set(path, entries);
    return Promise.resolve();
  }

  sizeOf(path: string): Promise<number> {
    this.tick();
    const file = this.#files.get(path);
    if (!file) return Promise.reject(new Deno.errors.NotFound(path));
    return Promise.resolve(file.length);
  }
}

/** Keeps the durable bytes plus a random prefix of the bytes appended since the last sync. */
function _revertFile(file: _MemFile, random: () => number): void {
  const current = file.view();
  const durable = file.durable;
  let kept: Uint8Array = durable;
  const appendedOnly = current.byteLength >= durable.byteLength &&
    current.subarray(0, durable.byteLength).every((byte, i) => byte === durable[i]);
  if (appendedOnly) {
    const extra = current.byteLength - durable.byteLength;
    kept = current.subarray(0, durable.byteLength + Math.floor(random() * (extra + 1)));
  }
  file.bytes = kept.slice();
  file.length = kept.byteLength;
  file.durable = kept.slice();
}

class _MemHandle implements FileHandle {
  #fs: MemFs;
  #path: string;
  #file: _MemFile;
  #generation: number;
  #writable: boolean;
  #closed = false;

  constructor(fs: MemFs, path: string, file: _MemFile, generation: number, writable: boolean) {
    this.#fs = fs;
    this.#path = path;
    this.#file = file;
    this.#generation = generation;
    this.#writable = writable;
  }

  #check(): void {
    if (this.#closed) throw new Deno.errors.BadResource("closed");
    this.#fs.tick(this.#generation);
  }

  readAt(buffer: Uint8Array, position: number): Promise<number> {
    this.#check();
    this.#fs.reads.push({ path: this.#path, position, length: buffer.byteLength });
    const view = this.#file.view();
    const count = Math.max(0, Math.min(buffer.byteLength, view.byteLength - position));
    buffer.set(view.subarray(position, position + count));
    return Promise.resolve(count);
  }

  writeAt(data: Uint8Array, position: number): Promise<void> {
    this.#check();
    this.#fs.writes += 1;
    if (!this.#writable) {
      return Promise.reject(new Deno.errors.PermissionDenied("read-only handle"));
    }
    const file = this.#file;
    const growth = Math.max(0, position + data.byteLength - file.length);
    const room = this.#fs.capacityBytes - this.#fs.usedBytes();
    const fits = growth <= room ? data.byteLength : Math.max(0, data.byteLength - (growth - room));
    file.ensureCapacity(position + fits);
    file.bytes.set(data.subarray(0, fits), position);
    file.length = Math.max(file.length, position + fits);
    return fits < data.byteLength ? Promise.reject(enospcError()) : Promise.resolve();
  }

  syncData(): Promise<void> {
    try {
      this.#sync();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  syncDataNow(): void {
    this.#sync();
    this.#fs.inlineSyncs += 1;
  }

  #sync(): void {
    this.#check();
    this.#fs.syncs += 1;
    if (this.#fs.failNextSync) {
      this.#fs.failNextSync = false;
      throw Object.assign(new Error("Input/output error (os error 5)"), { code: "EIO" });
    }
    this.#file.durable = this.#file.view().slice();
  }

  truncate(length: number): Promise<void> {
    this.#check();
    this.#file.ensureCapacity(length);
    if (length > this.#file.length) this.#file.bytes.fill(0, this.#file.length, length);
    this.#file.length = length;
    return Promise.resolve();
  }

  size(): Promise<number> {
    this.#check();
    return Promise.resolve(this.#file.length);
  }

  close(): void {
    this.#closed = true;
  }
}
