/**
 * A `FileSystem` wrapper for tests that logs every directory-level operation in order (to prove
 * what was fsynced after what) and can hold file removals until the test lets them go (to keep a
 * prune in flight while something else happens).
 */

import { denoFileSystem, type FileSystem } from "../../src/core/files.ts";

/** Removals held by `holdRemoves()`. */
export interface HeldRemoves {
  /** Resolves when the first held removal has been asked for. */
  started: Promise<void>;
  /** Lets every held removal, and every later one, go through. */
  release(): void;
}

/** The wrapper: `ops` lists "mkdirp <path>", "syncDir <path>", "open <path>", "remove <path>". */
export interface ObservedFileSystem extends FileSystem {
  ops: string[];
  holdRemoves(): HeldRemoves;
}

/** Wraps `inner` (the real disk by default). */
export function observedFileSystem(inner: FileSystem = denoFileSystem()): ObservedFileSystem {
  const ops: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  let noteStarted = (): void => {};
  return {
    ...inner,
    ops,
    holdRemoves() {
      const started = Promise.withResolvers<void>();
      const released = Promise.withResolvers<void>();
      noteStarted = started.resolve;
      gate = released.promise;
      return { started: started.promise, release: () => released.resolve() };
    },
    open(path, options) {
      ops.push(`open ${path}`);
      return inner.open(path, options);
    },
    mkdirp(path) {
      ops.push(`mkdirp ${path}`);
      return inner.mkdirp(path);
    },
    syncDir(path) {
      ops.push(`syncDir ${path}`);
      return inner.syncDir(path);
    },
    async remove(path) {
      ops.push(`remove ${path}`);
      noteStarted();
      await gate;
      return await inner.remove(path);
    },
  };
}
