// SPEC.md section 3, durability with a real process and a real disk: a child appends concurrently
// and reports every acknowledged LSN; it is killed with SIGKILL mid-stream; the spool is reopened
// and every reported LSN must be there, intact, contiguous from 1. Twenty cycles on one directory.

import assert from "node:assert/strict";
import { Spool } from "../../src/wal/spool.ts";
import { withTempDir } from "../helpers/temp.ts";
import { runUntilKilled } from "../helpers/process.ts";

const CYCLES = 20;
const WRITER_SCRIPT = new URL("../fixtures/spool_writer.ts", import.meta.url).pathname;

/** Runs the writer until it reported `enough` lines, then kills it with SIGKILL. */
function runAndKill(walDir: string, cycle: number, enough: number): Promise<string[]> {
  const args = ["run", "-A", WRITER_SCRIPT, walDir, String(cycle), "16"];
  return runUntilKilled(args, (lines) => lines.length >= enough);
}

Deno.test("acknowledged records survive kill -9 of the writer, 20 cycles", async () => {
  await withTempDir(async (walDir) => {
    const acknowledged = new Map<number, string>();
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const enough = 200 + Math.floor(Math.random() * 3000);
      const lines = await runAndKill(walDir, cycle, enough);
      assert.ok(lines[0]!.startsWith("ready "));
      for (const line of lines.slice(1)) {
        const space = line.indexOf(" ");
        acknowledged.set(Number(line.slice(0, space)), line.slice(space + 1));
      }
      const spool = await Spool.open({ walDir, timeline: 1, term: 1, segmentBytesMax: 64 * 1024 });
      try {
        const stored = new Map<number, string>();
        let since = 0;
        while (since < spool.currentLsn()) {
          for (const frame of await spool.readSince(since, 5000, 4 << 20)) {
            assert.equal(frame.lsn, since + 1, "contiguous from 1");
            stored.set(frame.lsn, new TextDecoder().decode(frame.payload));
            since = frame.lsn;
          }
        }
        for (const [lsn, body] of acknowledged) {
          assert.equal(stored.get(lsn), body, `cycle ${cycle}: acknowledged LSN ${lsn}`);
        }
      } finally {
        await spool.close();
      }
    }
    assert.ok(acknowledged.size > CYCLES * 200);
  });
});
