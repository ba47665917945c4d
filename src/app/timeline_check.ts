/**
 * A data directory holds one timeline: its spool (`wal/<timeline>/`) and its slots (whose catalog
 * records the timeline) belong together. Starting it under another `--timeline` would begin an
 * empty history beside the old one, with slots and a state that point into the old one, so ferry
 * refuses, before it writes anything, and says which timeline the directory holds.
 *
 * @module
 */

import { CatalogFormatError, TimelineMismatchError } from "../core/errors.ts";
import { denoFileSystem, joinPath } from "../core/files.ts";
import { decodeCatalog } from "../slots/catalog.ts";
import { CATALOG_FILE_NAME } from "../slots/slot_store.ts";
import { listTimelines } from "../wal/timelines.ts";

/**
 * Throws `TimelineMismatchError` when `dataDir` holds another timeline than `timeline` (in its
 * spool or its slot catalog); nothing is written. Needs read access to `dataDir`.
 */
export async function checkDataDirTimeline(dataDir: string, timeline: number): Promise<void> {
  const held = new Set(await listTimelines(denoFileSystem(), joinPath(dataDir, "wal")));
  const catalogTimeline = await _catalogTimeline(joinPath(dataDir, CATALOG_FILE_NAME));
  if (catalogTimeline !== undefined) held.add(catalogTimeline);
  held.delete(timeline);
  if (held.size === 0) return;
  const other = [...held].sort((a, b) => a - b).join(", ");
  throw new TimelineMismatchError(
    `the data directory ${dataDir} holds timeline ${other}, but --timeline is ${timeline}: a ` +
      `data directory keeps one timeline. Start with --timeline ${other} to use it, or give ` +
      `timeline ${timeline} a new --data-dir.`,
    { timeline, data_dir_timelines: [...held] },
  );
}

/** The timeline a readable catalog records; undefined when there is none or it does not decode. */
async function _catalogTimeline(path: string): Promise<number | undefined> {
  try {
    return decodeCatalog(await Deno.readFile(path)).timeline;
  } catch (error) {
    // A missing catalog is a new directory; a damaged one is the slot store's to report.
    if (error instanceof Deno.errors.NotFound || error instanceof CatalogFormatError) {
      return undefined;
    }
    throw error;
  }
}
