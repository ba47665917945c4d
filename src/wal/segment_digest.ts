/**
 * The active segment's running SHA-256 (SPEC.md 13.2 names a sealed segment by it), fed the bytes
 * of each group commit once they are durable. Opening the spool hashes nothing (the repair scan
 * checks CRCs only; after a clean shutdown nothing is read, `clean_shutdown.ts`), so the digest of
 * a reopened segment starts behind: it catches up by reading the file's durable bytes in order (in
 * the background after start-up, or at the latest when the segment is sealed), and takes live
 * bytes again once it has caught up.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { createHash, type Hash } from "node:crypto";
import { WalCorruptionError } from "../core/errors.ts";
import type { FileSystem } from "../core/files.ts";
import { READ_CHUNK_BYTES } from "../core/limits.ts";

/** SHA-256 over a segment file's bytes from offset 0, fed in order. */
export class RunningDigest {
  #hash: Hash;
  /** Bytes of the file hashed so far: live bytes are taken only when they start right here. */
  #hashedBytes: number;
  #catchingUp: Promise<void> | undefined;
  #stopped = false;
  /** Durable bytes noted after `#hashedBytes`, in order, not hashed yet (`hashNoted`). */
  #noted: Uint8Array[] = [];
  #notedBytes = 0;

  /** `hash` has already been fed the file's first `hashedBytes` bytes (a scan did it). */
  constructor(hash: Hash = createHash("sha256"), hashedBytes = 0) {
    this.#hash = hash;
    this.#hashedBytes = hashedBytes;
  }

  /** Bytes the digest has taken so far, hashed or noted. */
  get hashedBytes(): number {
    return this.#hashedBytes + this.#notedBytes;
  }

  /**
   * Bytes just made durable at `offset`: kept for `hashNoted` when the digest has caught up (or
   * hashed at once during a catch-up that has reached them), else left to `catchUp`, which reads
   * them from the file (they are durable before this is called).
   */
  noteWritten(bytes: Uint8Array, offset: number): void {
    if (offset !== this.hashedBytes) return;
    if (this.#catchingUp === undefined) {
      this.#noted.push(bytes);
      this.#notedBytes += bytes.byteLength;
      return;
    }
    this.#hash.update(bytes);
    this.#hashedBytes += bytes.byteLength;
  }

  /**
   * Hashes the noted bytes. The spool calls it while the next group commit's fdatasync runs, so
   * that hashing never stands between a group commit and its writers' answers.
   */
  hashNoted(): void {
    for (const bytes of this.#noted) this.#hash.update(bytes);
    this.#hashedBytes += this.#notedBytes;
    this.#noted = [];
    this.#notedBytes = 0;
  }

  /**
   * Reads and hashes the file's bytes from where the digest stands up to `durableEnd()` (asked
   * again after every read: appends may go on meanwhile), one `READ_CHUNK_BYTES` read at a time so
   * other work runs between them. One catch-up at a time; `stop()` ends it early. Needs read access.
   */
  catchUp(fs: FileSystem, path: string, durableEnd: () => number): Promise<void> {
    this.hashNoted();
    this.#catchingUp ??= this.#readUp(fs, path, durableEnd).finally(() => {
      this.#catchingUp = undefined;
    });
    return this.#catchingUp;
  }

  async #readUp(fs: FileSystem, path: string, durableEnd: () => number): Promise<void> {
    if (this.#hashedBytes >= durableEnd()) return;
    const file = await fs.open(path);
    try {
      const buffer = new Uint8Array(READ_CHUNK_BYTES);
      while (!this.#stopped && this.#hashedBytes < durableEnd()) {
        const wanted = Math.min(buffer.byteLength, durableEnd() - this.#hashedBytes);
        const got = await file.readAt(buffer.subarray(0, wanted), this.#hashedBytes);
        if (got < wanted) {
          throw new WalCorruptionError(`segment ${path} is shorter than its durable bytes`, {
            path,
          });
        }
        this.#hash.update(buffer.subarray(0, got));
        this.#hashedBytes += got;
      }
    } finally {
      file.close();
    }
  }

  /** Ends a catch-up under way after its current read (the segment is closing or retired). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#catchingUp?.catch(() => undefined);
  }

  /** The digest of exactly `sizeBytes` bytes, in hex; the digest must have caught up. */
  digest(sizeBytes: number): string {
    this.hashNoted();
    assert.equal(this.#hashedBytes, sizeBytes, "the digest covers every durable byte");
    return this.#hash.digest("hex");
  }
}
