// SPEC.md 13.2 and 13.4: in a cluster `GET /v1/segments` lists only sealed segments wholly at or
// below the commit LSN; a segment's own URL still serves any sealed segment.

import assert from "node:assert/strict";
import { withApp } from "../helpers/app_fixture.ts";
import { appendRecords } from "../helpers/primary_fixture.ts";

interface Listed {
  first_lsn: number;
  last_lsn: number;
  url: string;
}

Deno.test("GET /v1/segments hides a sealed segment above the commit LSN until the commit LSN reaches its end", async () => {
  const gate = { lsn: 0 };
  const options = {
    spool: { segmentBytesMax: 16_384 },
    primary: { members: new Set(["m1"]), commitLsn: () => gate.lsn },
  };
  await withApp(options, async (fixture) => {
    await appendRecords(fixture.primary, 1000);
    const sealed = fixture.spool.segments().filter((segment) => segment.sealed);
    assert.ok(sealed.length >= 3);
    const list = async (): Promise<Listed[]> => {
      const response = await fixture.call("GET", "/v1/segments");
      assert.equal(response.status, 200);
      return (await response.json()).segments;
    };
    gate.lsn = sealed[1]!.lastLsn - 1;
    const partly = await list();
    assert.deepEqual(partly.map((s) => s.last_lsn), [sealed[0]!.lastLsn], "the second ends above");
    gate.lsn = sealed[1]!.lastLsn;
    const both = await list();
    assert.deepEqual(both.map((s) => s.last_lsn), [sealed[0]!.lastLsn, sealed[1]!.lastLsn]);
    gate.lsn = fixture.spool.currentLsn();
    const all = await list();
    assert.deepEqual(all.map((s) => s.last_lsn), sealed.map((s) => s.lastLsn));
    // Only the listing is gated: a segment's URL serves it even while the listing hides it.
    const hidden = all[2]!;
    gate.lsn = 0;
    assert.deepEqual(await list(), []);
    const response = await fixture.call("GET", hidden.url);
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });
});
