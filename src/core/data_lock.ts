/**
 * An exclusive lock on the data directory, so two ferry processes never write one spool.
 *
 * @module
 */

import { joinPath } from "./files.ts";
import { UnavailableError } from "./errors.ts";

/** Name of the lock file inside the data directory. */
export const LOCK_FILE_NAME = "LOCK";

/** A held data-directory lock; `release()` unlocks and closes it. */
export interface DataDirLock {
  release(): void;
}

/**
 * Takes an exclusive, non-blocking lock on `<dataDir>/LOCK` (created when missing) and writes the
 * holder's PID into it. Throws `UnavailableError` when another process holds it. Needs read and
 * write access to the data directory.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  await Deno.mkdir(dataDir, { recursive: true });
  const path = joinPath(dataDir, LOCK_FILE_NAME);
  const file = await Deno.open(path, { read: true, write: true, create: true });
  if (!(await file.tryLock(true))) {
    file.close();
    throw new UnavailableError(
      `the data directory ${dataDir} is in use by another ferry process (${path} is locked)`,
    );
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  return {
    release() {
      try {
        file.unlockSync();
      } finally {
        file.close();
      }
    },
  };
}
