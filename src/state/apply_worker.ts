/**
 * The state's apply worker (a Web Worker): opens its own handle on the primary's Deno KV file and
 * applies the batches the primary sends (`apply_batch.ts`), so decoding, CRC checks, planning and
 * Deno KV's serialization run beside the write path instead of on it. Requests come one at a time; each
 * answers `committed` per visible commit, then `done` or `failed`.
 *
 * It imports nothing outside `src/` and no npm package: a worker may load only what the process
 * may read.
 *
 * @module
 */

import {
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
let kv: Deno.Kv | undefined;
let state: KvState | undefined;
let queue = Promise.resolve();

scope.onmessage = (event) => {
  queue = queue.then(() => _handle(event.data));
};

async function _handle(message: ToApplyWorker): Promise<void> {
  try {
    if (message.kind === "open") {
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
