/**
 * Which timelines a WAL directory holds: `<wal dir>/<timeline as 8 hex digits>/` (SPEC.md 3).
 *
 * @module
 */

import assert from "../core/assert.ts";
import type { FileSystem } from "../core/files.ts";

const _TIMELINE_DIR_PATTERN = /^[0-9a-f]{8}$/;

/** Name of a timeline directory: 8 lowercase hex digits. */
export function timelineDirName(timeline: number): string {
  assert(Number.isSafeInteger(timeline) && timeline >= 1 && timeline <= 0xffff_ffff);
  return timeline.toString(16).padStart(8, "0");
}

/**
 * The timelines with a directory under `walDir`, sorted; none when `walDir` does not exist.
 * Needs read access to `walDir`.
 */
export async function listTimelines(fs: FileSystem, walDir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await fs.readDir(walDir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return names.filter((name) => _TIMELINE_DIR_PATTERN.test(name))
    .map((name) => parseInt(name, 16))
    .sort((a, b) => a - b);
}
