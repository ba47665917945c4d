/**
 * The state benchmark's floors do the whole job they are timed for: every store holds each key's
 * last value and the applied LSN once its floor returns (a floor that skipped work would make
 * ferry's apply look slow beside it).
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  applyFloor,
  FLOOR_STORES,
  keyOf,
  REWRITTEN_KEYS,
  valueOf,
} from "../../bench/state_floor.ts";

/** Records past the first round of keys: they rewrite the first keys. */
const REWRITES = 500;
const RECORDS = REWRITTEN_KEYS + REWRITES;

/** The index of the last record written to key number `key`. */
function lastWriteOf(key: number): number {
  return key < REWRITES ? key + REWRITTEN_KEYS : key;
}

/** What a floor left in its store: each key's value and the applied LSN. */
interface StoreContents {
  values: Map<string, string>;
  applied: number;
}

async function readKv(dir: string): Promise<StoreContents> {
  const kv = await Deno.openKv(`${dir}/floor.kv`);
  try {
    const values = new Map<string, string>();
    for await (const entry of kv.list<string>({ prefix: ["state", "bench"] })) {
      values.set(entry.key[2] as string, entry.value);
    }
    const meta = await kv.get<{ applied_lsn: number }>(["state_meta"]);
    return { values, applied: meta.value!.applied_lsn };
  } finally {
    kv.close();
  }
}

function readSqlite(dir: string): StoreContents {
  const db = new DatabaseSync(`${dir}/floor.sqlite`);
  try {
    const rows = db.prepare("SELECT k, v FROM state WHERE c = 'bench'").all();
    const values = new Map(rows.map((row) => [String(row.k), String(row.v)]));
    const meta = db.prepare("SELECT applied_lsn FROM meta WHERE id = 1").get();
    return { values, applied: Number(meta!.applied_lsn) };
  } finally {
    db.close();
  }
}

async function readMemoryCheckpoint(dir: string): Promise<StoreContents> {
  const [head, ...lines] = (await Deno.readTextFile(`${dir}/floor.checkpoint`)).split("\n");
  const values = new Map<string, string>();
  for (const line of lines) {
    const tab = line.indexOf("\t");
    values.set(JSON.parse(line.slice(0, tab)), line.slice(tab + 1));
  }
  return { values, applied: JSON.parse(head!).applied_lsn };
}

for (const store of FLOOR_STORES) {
  Deno.test(`state floor "${store}" holds every key's last value and the applied LSN`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "ferry-state-floor-" });
    try {
      const times = await applyFloor(dir, { records: RECORDS, order: "rewrites", store });
      assert.ok(times.seconds > 0 && times.checkpointSeconds >= 0);
      const read = store === "kv"
        ? await readKv(dir)
        : store === "sqlite"
        ? readSqlite(dir)
        : await readMemoryCheckpoint(dir);
      assert.equal(read.applied, RECORDS);
      assert.equal(read.values.size, REWRITTEN_KEYS);
      for (const key of [0, REWRITES - 1, REWRITES, REWRITTEN_KEYS - 1]) {
        const expected = JSON.stringify(valueOf(lastWriteOf(key)));
        assert.equal(read.values.get(keyOf(key, "rewrites")), expected);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
