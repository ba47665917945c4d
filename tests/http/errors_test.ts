// The one error map (SPEC.md 9): every domain code has its status, a server path never reaches a
// body, and a routine 503 (a read whose LSN is not applied yet) is not logged as an error.

import assert from "node:assert/strict";
import {
  CatalogFormatError,
  type FerryError,
  SlotStoreCorruptError,
  WalCorruptionError,
  WalRemovedError,
} from "../../src/core/errors.ts";
import { finishApp, newRouter } from "../../src/http/router.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { withApp } from "../helpers/app_fixture.ts";

/** The response of a route that throws `error`, and what was logged. */
async function answerOf(error: FerryError) {
  const logger = createMemoryLogger();
  const app = newRouter();
  app.get("/boom", () => {
    throw error;
  });
  finishApp(app, logger);
  const response = await app.request("http://ferry.test/boom");
  return { status: response.status, body: await response.json(), lines: logger.lines };
}

Deno.test("wal_removed is 410; catalog_corrupt and slots_corrupt are 500 with their own codes", async () => {
  const removed = await answerOf(new WalRemovedError(3, 10));
  assert.equal(removed.status, 410);
  assert.equal(removed.body.error, "wal_removed");
  const catalog = await answerOf(new CatalogFormatError("bad catalog"));
  assert.deepEqual([catalog.status, catalog.body.error], [500, "catalog_corrupt"]);
  const slots = await answerOf(new SlotStoreCorruptError("both copies are bad"));
  assert.deepEqual([slots.status, slots.body.error], [500, "slots_corrupt"]);
});

Deno.test("a corruption's body names the file, never its server path; the log keeps the path", async () => {
  const path = "/srv/ferry/data/wal/00000001/00000000000000000065.wal";
  const answer = await answerOf(
    new WalCorruptionError(`segment ${path}: crc mismatch at offset 12`, { path, offset: 12 }),
  );
  assert.equal(answer.status, 500);
  assert.equal(answer.body.error, "wal_corrupt");
  assert.ok(!JSON.stringify(answer.body).includes("/srv/"), JSON.stringify(answer.body));
  assert.match(answer.body.message, /00000000000000000065\.wal: crc mismatch/);
  assert.equal(answer.lines[0]!.level, "error");
  assert.equal(answer.lines[0]!.path, path);
});

Deno.test("a read whose min_lsn is not applied in time is a 503 logged at info, not error", async () => {
  const logger = createMemoryLogger();
  await withApp({ app: { logger } }, async ({ call }) => {
    const response = await call("GET", "/v1/records/users/u1?min_lsn=99&await_timeout_ms=0");
    assert.equal(response.status, 503);
    assert.equal((await response.json()).error, "lsn_not_applied");
  });
  const logged = logger.lines.filter((line) => line.code === "lsn_not_applied");
  assert.equal(logged.length, 1);
  assert.equal(logged[0]!.level, "info");
});
