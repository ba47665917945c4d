// SPEC.md 13.5 in a real browser (Debian's Chromium, driven by puppeteer-core): the operator page
// of a primary with two replicas, live without a reload, every number it shows for a replica or
// a slot equal to /v1/status read at the same moment; and a replica's own page.

import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { getJson, startPrimary, startReplica, stop, write } from "../helpers/cluster.ts";
import { waitUntil } from "../helpers/process.ts";
import { withTempDir } from "../helpers/temp.ts";

/** What the functions run in the page touch of the DOM (this module is checked without its types). */
interface _Element {
  dataset: Record<string, string | undefined>;
  hidden: boolean;
  textContent: string | null;
  querySelectorAll(selector: string): Iterable<_Element>;
}
declare const document: {
  querySelector(selector: string): _Element | null;
  querySelectorAll(selector: string): Iterable<_Element>;
};

const CHROMIUM = "/usr/bin/chromium";
/** How long a page may take to show what the server has (a tick is 1 s). */
const PAGE_WAIT_MS = 20_000;

/** Installs Debian's Chromium when it is missing; the reason it cannot be had, if so. */
async function chromiumMissing(): Promise<string | undefined> {
  const present = () => Deno.stat(CHROMIUM).then(() => true, () => false);
  if (await present()) return undefined;
  const root = Deno.uid() === 0;
  const apt = (args: string[]) =>
    new Deno.Command(root ? "apt-get" : "sudo", {
      args: root ? args : ["apt-get", ...args],
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "null",
      stderr: "null",
    }).output().catch(() => undefined);
  await apt(["install", "-y", "--no-install-recommends", "chromium"]);
  if (!(await present())) {
    await apt(["update"]);
    await apt(["install", "-y", "--no-install-recommends", "chromium"]);
  }
  return (await present())
    ? undefined
    : "Chromium is not installed and apt-get could not install it";
}

const missing = await chromiumMissing();
if (missing && Deno.env.get("FERRY_REQUIRE_CHROMIUM") === "1") {
  throw new Error(`FERRY_REQUIRE_CHROMIUM=1 but ${missing}: the browser tests may not skip`);
}

function launch(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--headless=new",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** The numbers the page shows for each replica and slot: row id → field → raw value. */
function shownNumbers(page: Page): Promise<Record<string, Record<string, string>>> {
  return page.evaluate(() => {
    const out: Record<string, Record<string, string>> = {};
    for (const row of document.querySelectorAll("[data-replica],[data-slot]")) {
      const id = (row as _Element).dataset.replica
        ? `replica:${(row as _Element).dataset.replica}`
        : `slot:${(row as _Element).dataset.slot}`;
      out[id] = {};
      for (const cell of row.querySelectorAll("[data-field]")) {
        out[id]![(cell as _Element).dataset.field!] = (cell as _Element).dataset.value!;
      }
    }
    return out;
  });
}

/** The same numbers from a status document. */
function statusNumbers(status: Record<string, unknown>): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  const fields = (row: Record<string, unknown>, names: string[]) =>
    Object.fromEntries(names.map((name) => [name, String(row[name] ?? "null")]));
  for (const r of status.replicas as Record<string, unknown>[]) {
    out[`replica:${r.id}`] = fields(r, [
      "healthy",
      "lag_lsn",
      "lag_ms",
      "last_acked_lsn",
      "last_durable_lsn",
    ]);
  }
  for (const s of status.slots as Record<string, unknown>[]) {
    out[`slot:${s.replica_id}`] = fields(s, [
      "restart_lsn",
      "retained_bytes",
      "growth_bytes_per_s",
      "eta_invalidation_s",
    ]);
  }
  return out;
}

/** The page's numbers equal /v1/status read at the same moment, within one update (a tick). */
async function assertPageEqualsStatus(page: Page, base: string): Promise<void> {
  let last = "";
  await waitUntil("the page to show /v1/status's numbers", async () => {
    const shown = await shownNumbers(page);
    const expected = statusNumbers(await getJson(base, "/v1/status"));
    last = JSON.stringify({ shown, expected });
    try {
      assert.deepEqual(shown, expected);
      return true;
    } catch {
      return false;
    }
  }, PAGE_WAIT_MS).catch((error) => {
    throw new Error(`${error.message}: ${last}`);
  });
}

async function cardValue(page: Page, field: string): Promise<string | undefined> {
  return await page.$eval(`[data-field="${field}"]`, (el) => (el as _Element).dataset.value)
    .catch(() => undefined);
}

Deno.test({
  name: "the primary's page shows both replicas, follows writes live, turns a stopped replica " +
    "unhealthy with its slot's ETA, and equals /v1/status" +
    (missing ? ` (skipped: ${missing})` : ""),
  ignore: missing !== undefined,
  fn: async () => {
    await withTempDir(async (dir) => {
      const primary = await startPrimary(`${dir}/p`, ["--healthy-within-ms", "1000"]);
      const r1 = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1" });
      let r2 = await startReplica(primary, { dataDir: `${dir}/r2`, replicaId: "r2" });
      const browser = await launch();
      try {
        const page = await browser.newPage();
        await page.setViewport({ width: 900, height: 900 });
        await page.goto(`${primary.base}/ui`);
        await page.waitForSelector('[data-replica="r1"]', { timeout: PAGE_WAIT_MS });
        await page.waitForSelector('[data-replica="r2"]', { timeout: PAGE_WAIT_MS });

        const written = await write(primary.base, [
          { op: "put", collection: "c", key: "a", value: 1 },
          { op: "put", collection: "c", key: "b", value: 2 },
        ]);
        const lastLsn = String(written.body.last_lsn);
        await waitUntil(
          "the LSN to update without a reload",
          async () => await cardValue(page, "current_lsn") === lastLsn,
          PAGE_WAIT_MS,
        );
        await assertPageEqualsStatus(page, primary.base);

        await stop(r2);
        await page.waitForSelector(
          '[data-replica="r2"] [data-field="healthy"][data-value="false"]',
          {
            timeout: PAGE_WAIT_MS,
          },
        );
        await page.waitForFunction(
          () => {
            const eta = document.querySelector(
              '[data-slot="r2"] [data-field="eta_invalidation_s"]',
            );
            return eta !== null && (eta as _Element).dataset.value !== "null";
          },
          { timeout: PAGE_WAIT_MS },
        );
        await assertPageEqualsStatus(page, primary.base);
        await page.screenshot({ path: `${dir}/ui-primary.png` });
        assert.ok((await Deno.stat(`${dir}/ui-primary.png`)).size > 0);
        r2 = undefined!;
      } finally {
        await browser.close();
        await stop(r1);
        if (r2) await stop(r2);
        await stop(primary);
      }
    });
  },
});

Deno.test({
  name: "a replica's page shows its state and follows the primary's writes live" +
    (missing ? ` (skipped: ${missing})` : ""),
  ignore: missing !== undefined,
  fn: async () => {
    await withTempDir(async (dir) => {
      const primary = await startPrimary(`${dir}/p`);
      const replica = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1" });
      const browser = await launch();
      try {
        const page = await browser.newPage();
        await page.goto(`${replica.base}/ui`);
        await page.waitForSelector('[data-field="state"]', { timeout: PAGE_WAIT_MS });
        await waitUntil(
          "the replica to show healthy",
          async () => await cardValue(page, "state") === "healthy",
          PAGE_WAIT_MS,
        );
        const written = await write(primary.base, [{
          op: "put",
          collection: "c",
          key: "a",
          value: 1,
        }]);
        const lsn = String(written.body.last_lsn);
        await waitUntil(
          "applied LSN to follow without a reload",
          async () => await cardValue(page, "applied_lsn") === lsn,
          PAGE_WAIT_MS,
        );
        const title = await page.$eval("#title", (el) => el.textContent);
        assert.equal(title, "ferry replica r1");
        assert.equal(
          await page.$eval("[data-role=primary]", (el) => (el as _Element).hidden),
          true,
        );
        await page.screenshot({ path: `${dir}/ui-replica.png` });
      } finally {
        await browser.close();
        await stop(replica);
        await stop(primary);
      }
    });
  },
});
