/**
 * File systems for fault and probe tests that change a few operations of another (hold a read,
 * gate an fdatasync, report each step, record what was read) and pass the rest through.
 *
 * @module
 */

import type { FileHandle, FileSystem } from "../../src/core/files.ts";

/** Every operation of `handle`, passed through. */
function _passThroughHandle(handle: FileHandle): FileHandle {
  const through: FileHandle = {
    readAt: (buffer, position) => handle.readAt(buffer, position),
    writeAt: (data, position) => handle.writeAt(data, position),
    syncData: () => handle.syncData(),
    truncate: (length) => handle.truncate(length),
    size: () => handle.size(),
    close: () => handle.close(),
  };
  if (handle.syncDataNow !== undefined) through.syncDataNow = () => handle.syncDataNow!();
  return through;
}

/**
 * `inner`, with `overrides` in place of its own operations and each opened handle's operations
 * replaced by what `handleOverrides(handle, path)` gives. A handle whose `syncData` is replaced
 * loses the inline `syncDataNow` (unless that is replaced too): the spool then syncs through the
 * replacement, which a test that gates or counts fdatasyncs relies on.
 */
export function wrapFileSystem(
  inner: FileSystem,
  handleOverrides: (handle: FileHandle, path: string) => Partial<FileHandle>,
  overrides: Partial<Omit<FileSystem, "open">> = {},
): FileSystem {
  return {
    readDir: (path) => inner.readDir(path),
    mkdirp: (path) => inner.mkdirp(path),
    remove: (path) => inner.remove(path),
    rename: (from, to) => inner.rename(from, to),
    syncDir: (path) => inner.syncDir(path),
    sizeOf: (path) => inner.sizeOf(path),
    ...overrides,
    open: async (path, options) => {
      const handle = await inner.open(path, options);
      const replaced = handleOverrides(handle, path);
      const wrapped = { ..._passThroughHandle(handle), ...replaced };
      if (replaced.syncData !== undefined && replaced.syncDataNow === undefined) {
        delete wrapped.syncDataNow;
      }
      return wrapped;
    },
  };
}
