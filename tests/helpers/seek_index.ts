/** The seek index of a spool's segment, rebuilt from its file the way a reader builds it. */

import { denoFileSystem, joinPath } from "../../src/core/files.ts";
import { Segment, segmentFileName } from "../../src/wal/segment.ts";
import type { Spool } from "../../src/wal/spool.ts";

/** The `[lsn, offset]` checkpoints of the segment starting at `firstLsn`, or undefined. */
export async function seekIndexOf(
  spool: Spool,
  firstLsn: number,
): Promise<Array<[number, number]> | undefined> {
  const info = spool.segments().find((segment) => segment.firstLsn === firstLsn);
  if (!info) return undefined;
  const segment = new Segment({
    path: joinPath(spool.dir, segmentFileName(firstLsn)),
    firstLsn,
    lastLsn: info.lastLsn,
    sizeBytes: info.sizeBytes,
  });
  return (await segment.ensureIndex(denoFileSystem())).entries();
}
