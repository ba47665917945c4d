/**
 * The files of a timeline directory (SPEC.md section 3) as opening the spool sees them: the
 * listing (segments, ferry's own metadata, foreign names), the directories and segment files it
 * creates (each new entry made durable before use), and the sealed segments sized without reading.
 *
 * @module
 */

import { WalCorruptionError } from "../core/errors.ts";
import { type FileHandle, type FileSystem, joinPath, parentDir } from "../core/files.ts";
import { parseSegmentFileName, Segment, segmentFileName } from "./segment.ts";
import { readManifestSizes } from "./segment_manifest.ts";

/** Segment first LSNs (sorted) and other names in `dir`, or undefined when `dir` is missing. */
export async function listSegments(
  fs: FileSystem,
  dir: string,
): Promise<{ firstLsns: number[]; ignoredFiles: string[] } | undefined> {
  const names = await _readDirIfExists(fs, dir);
  if (names === undefined) return undefined;
  const firstLsns: number[] = [];
  const ignoredFiles: string[] = [];
  for (const name of names) {
    const lsn = parseSegmentFileName(name);
    if (lsn !== undefined) firstLsns.push(lsn);
    else if (!_METADATA_FILE_PATTERN.test(name)) ignoredFiles.push(name);
  }
  firstLsns.sort((a, b) => a - b);
  return { firstLsns, ignoredFiles };
}

async function _readDirIfExists(fs: FileSystem, dir: string): Promise<string[] | undefined> {
  try {
    return await fs.readDir(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Creates the missing `dir` and its missing parents, then fsyncs the parent of each directory it
 * created (the data dir for `wal/`, `wal/` for the timeline), so their entries survive a power cut
 * before any segment is written below them.
 */
export async function createDirs(fs: FileSystem, dir: string): Promise<void> {
  const created = [dir];
  let parent = parentDir(dir);
  // parentDir("/") is "/": the walk ends at the root at the latest.
  while (parent !== created[created.length - 1] && !(await _readDirIfExists(fs, parent))) {
    created.push(parent);
    parent = parentDir(parent);
  }
  await fs.mkdirp(dir);
  for (const path of created.reverse()) await fs.syncDir(parentDir(path));
}

/**
 * Sidecars, the manifest (`SEGMENT_MANIFEST_FILE_NAME`), the clean shutdown record
 * (`CLEAN_SHUTDOWN_FILE_NAME`) and their temp files (a crash may leave
 * one): ferry's own files, not foreign ones.
 */
const _METADATA_FILE_PATTERN = /^(\d{20}\.idx|segments\.manifest|clean\.shutdown)(\.tmp)?$/;

/**
 * The sealed segments, sized by the manifest when it lists exactly the listing's sealed segments,
 * else by file metadata (one stat each). Never read.
 */
export async function sealedSegments(
  fs: FileSystem,
  dir: string,
  firstLsns: readonly number[],
): Promise<{ sealed: Segment[]; fromManifest: boolean }> {
  const sealedLsns = firstLsns.slice(0, -1);
  let sizes = sealedLsns.length === 0 ? [] : await readManifestSizes(fs, dir, sealedLsns);
  const fromManifest = sizes !== undefined;
  if (sizes === undefined) {
    sizes = [];
    for (const lsn of sealedLsns) sizes.push(await fs.sizeOf(joinPath(dir, segmentFileName(lsn))));
  }
  const sealed = sealedLsns.map((firstLsn, i) =>
    new Segment({
      path: joinPath(dir, segmentFileName(firstLsn)),
      firstLsn,
      lastLsn: firstLsns[i + 1]! - 1,
      sizeBytes: sizes[i]!,
    })
  );
  return { sealed, fromManifest };
}

/** Creates an empty segment file and makes its directory entry durable before it is used. */
export async function createSegmentFile(
  fs: FileSystem,
  dir: string,
  firstLsn: number,
): Promise<FileHandle> {
  const path = joinPath(dir, segmentFileName(firstLsn));
  const file = await fs.open(path, { write: true, create: true });
  try {
    if (await file.size() !== 0) {
      throw new WalCorruptionError(`new segment ${path} already holds bytes`, { path });
    }
    await fs.syncDir(dir);
  } catch (error) {
    file.close();
    throw error;
  }
  return file;
}
