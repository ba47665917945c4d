/** A real-disk `FileSystem` that records every positional read, to prove what was (not) read. */

import { denoFileSystem, type FileSystem } from "../../src/core/files.ts";

/** One recorded read. */
export interface RecordedRead {
  path: string;
  position: number;
  length: number;
}

/** Wraps `denoFileSystem()`; `reads` lists every `readAt` made through it. */
export function recordingFileSystem(): FileSystem & { reads: RecordedRead[] } {
  const inner = denoFileSystem();
  const reads: RecordedRead[] = [];
  return {
    ...inner,
    reads,
    async open(path, options) {
      const handle = await inner.open(path, options);
      return {
        ...handle,
        readAt(buffer, position) {
          reads.push({ path, position, length: buffer.byteLength });
          return handle.readAt(buffer, position);
        },
        writeAt: (data, position) => handle.writeAt(data, position),
        syncData: () => handle.syncData(),
        truncate: (length) => handle.truncate(length),
        size: () => handle.size(),
        close: () => handle.close(),
      };
    },
  };
}
