/**
 * The state's apply worker (a Web Worker): opens its own handle on the primary's Deno KV file and
 * applies the batches the primary sends (`apply_batch.ts`), so decoding, CRC checks, planning and
 * Deno KV's serialization run beside the write path instead of on it. Requests come one at a time; each
 * answers `committed` per visible commit, then `done` or `failed`. It runs at a lower priority than
 * the write path (`STATE_APPLY_NICE_STEPS`) when the process may set one.
 *
 * It imports nothing outside `src/` and no npm package: a worker may load only what the process
 * may read.
 *
 * @module
 */

import { getPriority, setPriority } from "node:os";
import {
  type ApplyPriority,
  type FromApplyWorker,
  rawApplyFrames,
  type ToApplyWorker,
  unpackFrames,
} from "./apply_batch.ts";
import { applyFrames } from "./apply_frames.ts";
import { KvState } from "./kv_state.ts";

/** The part of a worker's global scope this module uses. */
interface WorkerScope {
  postMessage(message: FromApplyWorker): void;
  onmessage: ((event: MessageEvent<ToApplyWorker>) => void) | null;
}

const scope = self as unknown as WorkerScope;
/** Linux's lowest priority (highest nice value). */
const NICE_MAX = 19;
let kv: Deno.Kv | undefined;
let state: KvState | undefined;
let queue = Promise.resolve();

scope.onmessage = (event) => {
  queue = queue.then(() => _handle(event.data));
};

async function _handle(message: ToApplyWorker): Promise<void> {
  try {
    if (message.kind === "open") {
      // Before the open: Deno KV's SQLite thread, started by it, inherits this thread's priority.
      scope.postMessage({ kind: "priority", priority: _lowerPriority(message.niceSteps) });
      kv = await Deno.openKv(message.path);
      state = new KvState(kv);
    } else if (message.kind === "apply" || message.kind === "apply_raw") {
      if (state === undefined) throw new Error("the apply worker's store is not open");
      const frames = message.kind === "apply"
        ? unpackFrames(message.frames)
        : rawApplyFrames(message.frames, message.afterLsn);
      const skipped = await applyFrames(
        state,
        frames,
        (lsn) => scope.postMessage({ kind: "committed", lsn }),
      );
      scope.postMessage({ kind: "done", skipped });
      return;
    } else {
      kv?.close();
      kv = state = undefined;
    }
    scope.postMessage({ kind: "done", skipped: [] });
  } catch (error) {
    const { name, message } = error instanceof Error ? error : new Error(String(error));
    scope.postMessage({ kind: "failed", name, message });
  }
}

/**
 * Takes this thread `steps` nice steps below its priority (Linux keeps one per thread), so the write
 * path's thread wins the CPU when both want it. Never raises it: that needs privileges.
 */
function _lowerPriority(steps: number): ApplyPriority {
  try {
    const nice = Math.min(NICE_MAX, getPriority(0) + Math.max(0, steps));
    setPriority(0, nice);
    return { nice };
  } catch (error) {
    return { refused: error instanceof Error ? error.message : String(error) };
  }
}
