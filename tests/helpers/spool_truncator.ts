// A child process for the truncation kill test: opens the spool in the given directory and
// truncates it after the given LSN, printing "step <n> <operation>" after each operation that
// changes the disk, then "done <dropped records>"; then it idles until killed. With a pause step it
// stops right after that step instead, so the parent's SIGKILL lands exactly there. Run:
//   deno run --allow-read=<wal dir> --allow-write=<wal dir> tests/helpers/spool_truncator.ts \
//     <wal dir> <lsn> <pause after step, 0: never>

import { denoFileSystem, type FileSystem } from "../../src/core/files.ts";
import { Spool } from "../../src/wal/spool.ts";
import { wrapFileSystem } from "./wrapped_fs.ts";

const [walDir, lsnText, pauseText = "0"] = Deno.args;
if (!walDir || !lsnText) throw new Error("usage: spool_truncator.ts <wal dir> <lsn> <pause step>");
const pauseAfterStep = Number(pauseText);
const utf8 = new TextEncoder();
const HOUR_MS = 3_600_000;

function report(line: string): void {
  Deno.stdout.writeSync(utf8.encode(line + "\n"));
}

let counting = false;
let step = 0;

/** Reports a finished disk change; at the pause step, waits to be killed. */
async function stepDone(operation: string): Promise<void> {
  if (!counting) return;
  step += 1;
  report(`step ${step} ${operation}`);
  if (step === pauseAfterStep) await new Promise((resolve) => setTimeout(resolve, HOUR_MS));
}

/** The real disk, with a report after every operation that changes it. */
function steppingFileSystem(inner: FileSystem): FileSystem {
  return wrapFileSystem(inner, (handle, path) => ({
    async writeAt(data, position) {
      await handle.writeAt(data, position);
      await stepDone(`write ${path}`);
    },
    async syncData() {
      await handle.syncData();
      await stepDone(`fdatasync ${path}`);
    },
    async truncate(length) {
      await handle.truncate(length);
      await stepDone(`truncate ${path} ${length}`);
    },
  }), {
    async remove(path) {
      await inner.remove(path);
      await stepDone(`remove ${path}`);
    },
    async rename(from, to) {
      await inner.rename(from, to);
      await stepDone(`rename ${from}`);
    },
    async syncDir(path) {
      await inner.syncDir(path);
      await stepDone(`fsync ${path}`);
    },
  });
}

const spool = await Spool.open({
  walDir,
  timeline: 1,
  term: 1,
  segmentBytesMax: 1024,
  fs: steppingFileSystem(denoFileSystem()),
});
report(`ready ${spool.currentLsn()}`);
counting = true;
const result = await spool.truncateAfter(Number(lsnText));
report(`done ${result.droppedRecords}`);
await new Promise((resolve) => setTimeout(resolve, HOUR_MS));
