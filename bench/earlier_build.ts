/**
 * An earlier commit checked out beside this checkout, for the A/B benchmarks (`ab_builds.ts`,
 * `apply_ab.ts`): a temporary git worktree, removed with its directory once the run ends.
 *
 * @module
 */

import { joinPath } from "../src/core/files.ts";

/** This checkout's root (B). */
export const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The earlier build (A) and what names both builds in a result. */
export interface EarlierBuild {
  /** Root of the worktree holding commit A. */
  root: string;
  /** A temporary directory the run may use; removed with the worktree. */
  tmp: string;
  commitA: string;
  commitB: string;
  /** Whether this checkout has uncommitted changes to tracked files (B is not just `commitB`). */
  dirty: boolean;
}

/** Runs `fn` with `commit` checked out in a temporary worktree; removes it afterwards. */
export async function withEarlierBuild<T>(
  commit: string,
  fn: (build: EarlierBuild) => Promise<T>,
): Promise<T> {
  const commitA = await git("rev-parse", "--short", commit);
  const commitB = await git("rev-parse", "--short", "HEAD");
  const dirty = (await git("status", "--porcelain", "--untracked-files=no")).length > 0;
  const tmp = await Deno.makeTempDir({ prefix: "ferry-ab-" });
  const root = joinPath(tmp, "a");
  try {
    await git("worktree", "add", "--detach", root, commitA);
    return await fn({ root, tmp, commitA, commitB, dirty });
  } finally {
    await git("worktree", "remove", "--force", root).catch(() => undefined);
    await Deno.remove(tmp, { recursive: true }).catch(() => undefined);
  }
}

async function git(...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("git", { args, cwd: ROOT }).output();
  if (code !== 0) throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout).trim();
}
