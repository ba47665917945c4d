/** A real-disk `FileSystem` that records every positional read, to prove what was (not) read. */

import { denoFileSystem, type FileSystem } from "../../src/core/files.ts";
import { wrapFileSystem } from "./wrapped_fs.ts";

/** One recorded read. */
export interface RecordedRead {
  path: string;
  position: number;
  length: number;
}

/** Wraps `denoFileSystem()`; `reads` lists every `readAt` made through it. */
export function recordingFileSystem(): FileSystem & { reads: RecordedRead[] } {
  const reads: RecordedRead[] = [];
  const fs = wrapFileSystem(denoFileSystem(), (handle, path) => ({
    readAt(buffer, position) {
      reads.push({ path, position, length: buffer.byteLength });
      return handle.readAt(buffer, position);
    },
  }));
  return { ...fs, reads };
}
