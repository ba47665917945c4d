/**
 * Opening the primary's Deno KV (`<data>/ferry.kv`) with the checks start-up owes an operator: a
 * damaged file, or a state older than the spool can rebuild, stops the start with one message that
 * says what to do.
 *
 * @module
 */

import { isKvDamageError, KvCorruptError } from "../core/errors.ts";
import { joinPath } from "../core/files.ts";
import { REPLICAS_MAX } from "../core/limits.ts";
import { KV_SLOTS_META_KEY, KV_SLOTS_PREFIX } from "../slots/slot_kv.ts";
import { CATALOG_FILE_NAME } from "../slots/slot_store.ts";
import { KvState } from "../state/kv_state.ts";

/** The primary's Deno KV file in its data directory: slots and the materialised state. */
export const PRIMARY_KV_FILE = "ferry.kv";

/**
 * Opens the primary's Deno KV (`<data>/ferry.kv`) and reads what start-up reads from it first: the
 * slots' generation and entries, and the state meta. A damaged file fails right here, at open or on
 * these reads (`isKvDamageError`), and so does a state older than the spool can rebuild (an emptied
 * or replaced file after a prune): both become one `KvCorruptError` naming the file and what to do.
 * Nothing is written. Needs read and write access to the data directory.
 */
export async function openPrimaryKv(dataDir: string, oldestLsn: number): Promise<Deno.Kv> {
  const path = joinPath(dataDir, PRIMARY_KV_FILE);
  let kv: Deno.Kv | undefined;
  let appliedLsn: number;
  try {
    kv = await Deno.openKv(path);
    await kv.get(KV_SLOTS_META_KEY);
    await Array.fromAsync(kv.list({ prefix: [...KV_SLOTS_PREFIX] }, { limit: REPLICAS_MAX + 1 }));
    appliedLsn = (await new KvState(kv).meta()).applied_lsn;
  } catch (error) {
    kv?.close();
    if (!isKvDamageError(error) && !(error instanceof KvCorruptError)) throw error;
    throw new KvCorruptError(
      `cannot open or read the Deno KV file ${path} (${error.message}). ` +
        _kvRemedy(dataDir, path, oldestLsn),
      { path, cause: error.message },
    );
  }
  if (appliedLsn + 1 < oldestLsn) {
    kv.close();
    throw new KvCorruptError(
      `the state in ${path} is applied up to LSN ${appliedLsn}, but the spool starts at LSN ` +
        `${oldestLsn}: the records in between are gone, so the state cannot catch up (the file was ` +
        `emptied, replaced or restored from an older copy). ` + _kvRemedy(dataDir, path, oldestLsn),
      { path, applied_lsn: appliedLsn, oldest_lsn: oldestLsn },
    );
  }
  return kv;
}

/** What an operator can do about a damaged `ferry.kv`, given what the spool still holds. */
function _kvRemedy(dataDir: string, path: string, oldestLsn: number): string {
  const intact = `The spool (${joinPath(dataDir, "wal")}) and ${
    joinPath(dataDir, CATALOG_FILE_NAME)
  } are separate files that do not depend on it.`;
  if (oldestLsn <= 1) {
    return `${intact} To rebuild it, move ${path} (and any ${path}-wal, ${path}-shm) aside and ` +
      `start ferry again: the slots reload from the catalog and the state is re-applied from the ` +
      `spool, which still holds every record from LSN 1.`;
  }
  return `${intact} The spool no longer holds LSN 1 (its oldest record is LSN ${oldestLsn}), so ` +
    `the state cannot be rebuilt from it: restore ${path} from a backup.`;
}
