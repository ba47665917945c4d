/**
 * Who writes the primary's materialised state: a worker (`apply_worker.ts`) with its own handle on
 * the Deno KV file, or, where the process may not load the worker's modules (they are read like
 * any file: `--allow-read` must cover `src/`), the primary's own thread. Measured on 2 cores, the
 * apply work in the primary's thread took a quarter of the single-write throughput at 64 clients
 * and tripled the 1-client p99 (bench/RESULTS.md).
 *
 * @module
 */

import assert from "../core/assert.ts";
import { STATE_APPLY_NICE_STEPS } from "../core/limits.ts";
import {
  type ApplyPriority,
  type FromApplyWorker,
  packFrames,
  rawFrameBuffer,
  RawFramesRejectedError,
  type ToApplyWorker,
} from "./apply_batch.ts";
import type { RawFrames } from "../wal/range_read.ts";
import { type ApplyFrame, applyFrames, type SkippedRecord } from "./apply_frames.ts";
import { KvState } from "./kv_state.ts";

/** Applies frames to the state; one call at a time. */
export interface StateWriter {
  readonly mode: "worker" | "in_process";
  /** Applies `frames` (see `applyFrames`); `onCommitted(lsn)` as each commit becomes visible. */
  apply(
    frames: readonly ApplyFrame[],
    onCommitted: (lsn: number) => void,
  ): Promise<SkippedRecord[]>;
  /**
   * Applies frames as the spool stores them (the first after `afterLsn`), decoded and CRC-checked
   * where they are applied; `RawFramesRejectedError` when a check fails. Absent: use `apply`.
   */
  applyRaw?(
    raw: RawFrames,
    afterLsn: number,
    onCommitted: (lsn: number) => void,
  ): Promise<SkippedRecord[]>;
  close(): Promise<void>;
}

/** The worker stopped (an uncaught error, or it could not load): its writer is unusable. */
export class ApplyWorkerGoneError extends Error {
  override name = "ApplyWorkerGoneError";
}

/** Applies in the calling thread, through a store of its own (its entry count starts from KV). */
export class InProcessWriter implements StateWriter {
  readonly mode = "in_process";
  #state: KvState;

  constructor(kv: Deno.Kv) {
    this.#state = new KvState(kv);
  }

  apply(frames: readonly ApplyFrame[], onCommitted: (lsn: number) => void) {
    return applyFrames(this.#state, frames, onCommitted);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Why this process may not run the apply worker (its modules are read like any file), or
 * undefined when it may.
 */
export function workerRefusal(): string | undefined {
  const modules = new URL("../", import.meta.url);
  if (modules.protocol !== "file:") return `the modules are not files (${modules.protocol})`;
  const read = Deno.permissions.querySync({ name: "read", path: modules });
  if (read.state === "granted") return undefined;
  return `no read access to ${decodeURIComponent(modules.pathname)} (add it to --allow-read)`;
}

interface Pending {
  resolve: (skipped: SkippedRecord[]) => void;
  reject: (error: Error) => void;
  onCommitted?: (lsn: number) => void;
}

/** The priority an apply worker takes, and who hears how it came out. */
export interface WorkerPriority {
  niceSteps: number;
  onPriority?: (priority: ApplyPriority) => void;
}

/** The apply worker's module. */
export const APPLY_WORKER_MODULE = new URL("./apply_worker.ts", import.meta.url);

/** Applies in the apply worker; the KV file is opened there by path. */
export class WorkerWriter implements StateWriter {
  readonly mode = "worker";
  #worker: Worker;
  #pending: Pending | undefined;
  #gone: Error | undefined;
  #opened: Promise<unknown>;

  #onPriority: ((priority: ApplyPriority) => void) | undefined;
  /** Nice steps the worker takes below the process as it opens (0: the process's priority). */
  readonly niceSteps: number;

  /**
   * `module` is the worker's (tests give one that fails); `priority.onPriority` hears the priority
   * the worker took as it opened (`niceSteps` below the process, when permitted).
   */
  constructor(
    kvPath: string,
    module: URL = APPLY_WORKER_MODULE,
    priority: WorkerPriority = { niceSteps: STATE_APPLY_NICE_STEPS },
  ) {
    this.niceSteps = priority.niceSteps;
    this.#onPriority = priority.onPriority;
    this.#worker = new Worker(module.href, {
      type: "module",
      name: "ferry-state-apply",
    });
    this.#worker.onmessage = (event: MessageEvent<FromApplyWorker>) => this.#receive(event.data);
    this.#worker.onerror = (event) => {
      // Handled here: unhandled, a worker's error would end the whole process.
      event.preventDefault();
      this.#end(new ApplyWorkerGoneError(`the state's apply worker stopped: ${event.message}`));
    };
    // A worker that cannot open the file is no use: the caller goes on in its own thread.
    this.#opened = this.#request({
      kind: "open",
      path: kvPath,
      niceSteps: this.niceSteps,
    }).catch((error: Error) => {
      const gone = error instanceof ApplyWorkerGoneError ? error : new ApplyWorkerGoneError(
        `the state's apply worker could not open ${kvPath}: ${error.message}`,
      );
      this.#end(gone);
      throw gone;
    });
    this.#opened.catch(() => undefined);
  }

  async apply(frames: readonly ApplyFrame[], onCommitted: (lsn: number) => void) {
    await this.#opened;
    const packed = packFrames(frames);
    return await this.#request({ kind: "apply", frames: packed }, [packed], onCommitted);
  }

  async applyRaw(raw: RawFrames, afterLsn: number, onCommitted: (lsn: number) => void) {
    await this.#opened;
    const frames = rawFrameBuffer(raw);
    return await this.#request({ kind: "apply_raw", frames, afterLsn }, [frames], onCommitted);
  }

  /** Ends the worker now, whatever it does: what it committed is in KV; applying again converges. */
  terminate(): void {
    this.#end(new ApplyWorkerGoneError("the state's apply worker was ended"));
  }

  async close(): Promise<void> {
    // A stop right after the start finds the open under way: it ends first (one request at a time).
    await this.#opened.catch(() => undefined);
    if (this.#gone === undefined) {
      await this.#request({ kind: "close" }).catch(() => undefined);
    }
    this.#end(new ApplyWorkerGoneError("the state's apply worker was closed"));
  }

  #request(
    message: ToApplyWorker,
    transfer: Transferable[] = [],
    onCommitted?: (lsn: number) => void,
  ): Promise<SkippedRecord[]> {
    if (this.#gone) return Promise.reject(this.#gone);
    assert(this.#pending === undefined, "one request to the apply worker at a time");
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject, onCommitted };
      this.#worker.postMessage(message, transfer);
    });
  }

  #receive(message: FromApplyWorker): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    if (message.kind === "committed") {
      pending.onCommitted?.(message.lsn);
      return;
    }
    if (message.kind === "priority") {
      this.#onPriority?.(message.priority);
      return;
    }
    this.#pending = undefined;
    if (message.kind === "done") pending.resolve(message.skipped);
    else if (message.name === "RawFramesRejectedError") {
      pending.reject(new RawFramesRejectedError(message.message));
    } else pending.reject(Object.assign(new Error(message.message), { name: message.name }));
  }

  #end(error: Error): void {
    this.#gone ??= error;
    this.#worker.terminate();
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(this.#gone);
  }
}
