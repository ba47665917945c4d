// SPEC.md section 3, group commit: where the fdatasync of a group commit runs. One or two writers
// get it on the event loop's thread (no hand-off to a pool thread and back); more concurrent
// writers, a slow disk, or a failing one get the usual async fdatasync or the usual failure. Either
// way an append resolves only once its bytes are synced.

import assert from "node:assert/strict";
import fc from "fast-check";
import { InlineSyncPolicy } from "../../src/wal/inline_sync.ts";
import { Spool } from "../../src/wal/spool.ts";
import { UnavailableError } from "../../src/core/errors.ts";
import { type FileSystem } from "../../src/core/files.ts";
import {
  WAL_INLINE_SYNC_AFTER_COMMITS,
  WAL_INLINE_SYNC_PROBE_EVERY,
  WAL_INLINE_SYNC_SLOW_MS,
  WAL_INLINE_SYNC_WRITERS_MAX,
} from "../../src/core/limits.ts";
import { MemFs } from "../helpers/mem_fs.ts";
import { withTempDir } from "../helpers/temp.ts";
import { wrapFileSystem } from "../helpers/wrapped_fs.ts";

const utf8 = new TextEncoder();
const FAST_MS = WAL_INLINE_SYNC_SLOW_MS / 4;
/**
 * Spools on the in-memory layer, where no flush counts as slow: a pause of this process (a
 * collection, a busy machine) between the start and the end of a flush must not end an inline run.
 */
const MEM_SPOOL = { walDir: "/data/wal", timeline: 1, term: 1, inlineSyncSlowMs: Infinity };
const SLOW_MS = WAL_INLINE_SYNC_SLOW_MS * 2;
/** Writers too many for an inline fdatasync. */
const MANY = WAL_INLINE_SYNC_WRITERS_MAX + 1;

/** A policy that has seen `commits` lone async commits. */
function policyAfterAloneCommits(commits: number): InlineSyncPolicy {
  const policy = new InlineSyncPolicy();
  for (let i = 0; i < commits; i++) {
    assert.equal(policy.inline(1), false);
    policy.synced({ appends: 1, inline: false, ms: FAST_MS, queued: 0 });
  }
  return policy;
}

/** Runs `commits` single-append commits through `policy`; returns how many it ran inline. */
function inlineOf(policy: InlineSyncPolicy, commits: number): number {
  let inline = 0;
  for (let i = 0; i < commits; i++) {
    const now = policy.inline(1);
    if (now) inline += 1;
    policy.synced({ appends: 1, inline: now, ms: FAST_MS, queued: 0 });
  }
  return inline;
}

Deno.test("a writer alone for WAL_INLINE_SYNC_AFTER_COMMITS commits syncs inline from the next", () => {
  const policy = policyAfterAloneCommits(WAL_INLINE_SYNC_AFTER_COMMITS - 1);
  assert.equal(policy.few, false);
  assert.equal(policy.inline(1), false);
  policy.synced({ appends: 1, inline: false, ms: FAST_MS, queued: 0 });
  assert.equal(policy.few, true);
  assert.equal(policy.inline(1), true);
});

Deno.test("two writers count as few: groups of two, one append arriving during a flush", () => {
  const policy = new InlineSyncPolicy();
  const few = WAL_INLINE_SYNC_WRITERS_MAX;
  for (let i = 0; i < WAL_INLINE_SYNC_AFTER_COMMITS; i++) {
    assert.equal(policy.inline(few), false);
    policy.synced({ appends: few, inline: false, ms: FAST_MS, queued: few - 1 });
  }
  assert.equal(policy.inline(few), true);
});

Deno.test("while inline, one commit in WAL_INLINE_SYNC_PROBE_EVERY syncs async to look for other writers", () => {
  const policy = policyAfterAloneCommits(WAL_INLINE_SYNC_AFTER_COMMITS);
  const commits = WAL_INLINE_SYNC_PROBE_EVERY * 3;
  assert.equal(inlineOf(policy, commits), commits - 3);
});

Deno.test("a larger group, more appends arriving during a flush, or a slow flush ends the run", () => {
  const endings = [
    (policy: InlineSyncPolicy) => assert.equal(policy.inline(MANY), false),
    (policy: InlineSyncPolicy) =>
      policy.synced({ appends: MANY, inline: false, ms: FAST_MS, queued: 0 }),
    (policy: InlineSyncPolicy) =>
      policy.synced({ appends: 1, inline: false, ms: FAST_MS, queued: MANY - 1 }),
    (policy: InlineSyncPolicy) =>
      policy.synced({ appends: 1, inline: true, ms: SLOW_MS, queued: 0 }),
    (policy: InlineSyncPolicy) =>
      policy.synced({ appends: 1, inline: false, ms: SLOW_MS, queued: 0 }),
  ];
  for (const end of endings) {
    const policy = policyAfterAloneCommits(WAL_INLINE_SYNC_AFTER_COMMITS);
    assert.equal(policy.few, true);
    end(policy);
    assert.equal(policy.few, false);
    assert.equal(policy.inline(1), false, "it takes few-writer async commits again to go inline");
  }
});

Deno.test("property: inline only for small groups, after enough few-writer fast async commits, never a whole probe period in a row", () => {
  const event = fc.record({
    appends: fc.integer({ min: 1, max: MANY + 1 }),
    slow: fc.boolean(),
    queued: fc.integer({ min: 0, max: MANY }),
  });
  fc.assert(fc.property(fc.array(event, { maxLength: 200 }), (events) => {
    const policy = new InlineSyncPolicy();
    let few = 0; // the model: few-writer fast async commits since the run last ended
    let inlineInARow = 0;
    for (const { appends, slow, queued } of events) {
      const inline = policy.inline(appends);
      if (inline) {
        assert.ok(appends <= WAL_INLINE_SYNC_WRITERS_MAX);
        assert.ok(few >= WAL_INLINE_SYNC_AFTER_COMMITS);
        inlineInARow += 1;
        assert.ok(inlineInARow < WAL_INLINE_SYNC_PROBE_EVERY);
      } else inlineInARow = 0;
      const ms = slow ? SLOW_MS : FAST_MS;
      // Inline, nothing can arrive while the thread waits.
      const arrived = inline ? 0 : queued;
      policy.synced({ appends, inline, ms, queued: arrived });
      const many = appends > WAL_INLINE_SYNC_WRITERS_MAX || arrived >= WAL_INLINE_SYNC_WRITERS_MAX;
      if (slow || many) few = 0;
      else if (!inline) few += 1;
    }
  }));
});

function payload(tag: string): Uint8Array {
  return utf8.encode(JSON.stringify({ op: "put", collection: "c", key: tag, value: tag }));
}

/** Appends `count` records one after another, each awaited: a writer alone. */
async function writeAlone(spool: Spool, count: number, tag: string): Promise<void> {
  for (let i = 0; i < count; i++) await spool.append([payload(`${tag}${i}`)]);
}

Deno.test("a spool with one writer syncs inline, and every answered append survives a power cut", async () => {
  const fs = new MemFs();
  const spool = await Spool.open({ ...MEM_SPOOL, fs });
  const commits = WAL_INLINE_SYNC_AFTER_COMMITS + WAL_INLINE_SYNC_PROBE_EVERY;
  await writeAlone(spool, commits, "a");
  assert.equal(fs.syncs - fs.inlineSyncs, WAL_INLINE_SYNC_AFTER_COMMITS + 1);
  assert.equal(fs.inlineSyncs, WAL_INLINE_SYNC_PROBE_EVERY - 1);
  fs.powerCut(() => 0); // keeps synced bytes only
  const reopened = await Spool.open({ ...MEM_SPOOL, fs });
  assert.equal(reopened.currentLsn(), commits);
  await reopened.close();
});

/** MemFs with an async fdatasync that takes a turn of the event loop, as a disk's does. */
function slowSyncFs(fs: MemFs): FileSystem {
  return wrapFileSystem(fs, (handle) => ({
    syncData: async () => {
      await new Promise((resolve) => setTimeout(resolve, 0));
      await handle.syncData();
    },
    syncDataNow: () => handle.syncDataNow!(),
  }));
}

/** A spool on `mem` whose async fdatasync takes a timer's turn; no flush counts as slow. */
function openOnSlowSync(mem: MemFs): Promise<Spool> {
  return Spool.open({ ...MEM_SPOOL, fs: slowSyncFs(mem) });
}

/** `writers` writers, each writing `commits` records one after another, all at once. */
async function writeConcurrently(spool: Spool, writers: number, commits: number): Promise<void> {
  const tags = Array.from({ length: writers }, (_, w) => `w${w}-`);
  await Promise.all(tags.map((tag) => writeAlone(spool, commits, tag)));
}

Deno.test("more than WAL_INLINE_SYNC_WRITERS_MAX concurrent writers keep the async fdatasync (their appends share group commits)", async () => {
  const mem = new MemFs();
  const spool = await openOnSlowSync(mem);
  const commits = (WAL_INLINE_SYNC_AFTER_COMMITS + WAL_INLINE_SYNC_PROBE_EVERY) * 2;
  await writeConcurrently(spool, MANY, commits);
  assert.equal(mem.inlineSyncs, 0);
  assert.equal(spool.currentLsn(), commits * MANY);
  await spool.close();
});

Deno.test("two concurrent writers sync inline, and every answered append survives a power cut", async () => {
  const mem = new MemFs();
  const spool = await openOnSlowSync(mem);
  const commits = (WAL_INLINE_SYNC_AFTER_COMMITS + WAL_INLINE_SYNC_PROBE_EVERY) * 2;
  await writeConcurrently(spool, WAL_INLINE_SYNC_WRITERS_MAX, commits);
  assert.ok(mem.inlineSyncs > 0, "two writers went inline");
  mem.powerCut(() => 0);
  const reopened = await Spool.open({ ...MEM_SPOOL, fs: mem });
  assert.equal(reopened.currentLsn(), commits * WAL_INLINE_SYNC_WRITERS_MAX);
  await reopened.close();
});

Deno.test("more writers end a lone writer's inline run within one probe period", async () => {
  const mem = new MemFs();
  const spool = await openOnSlowSync(mem);
  await writeAlone(spool, WAL_INLINE_SYNC_AFTER_COMMITS + 2, "a");
  const inlineAlone = mem.inlineSyncs;
  assert.ok(inlineAlone > 0, "the lone writer went inline");
  await writeConcurrently(spool, MANY, WAL_INLINE_SYNC_PROBE_EVERY * 4);
  assert.ok(
    mem.inlineSyncs - inlineAlone < WAL_INLINE_SYNC_PROBE_EVERY,
    `${mem.inlineSyncs - inlineAlone} inline syncs with ${MANY} writers`,
  );
  await spool.close();
});

Deno.test("a failed inline fdatasync stops the spool like a failed async one", async () => {
  const fs = new MemFs();
  const spool = await Spool.open({ ...MEM_SPOOL, fs });
  await writeAlone(spool, WAL_INLINE_SYNC_AFTER_COMMITS + 1, "a");
  assert.ok(fs.inlineSyncs > 0);
  const before = spool.currentLsn();
  fs.failNextSync = true;
  await assert.rejects(() => spool.append([payload("x")]), UnavailableError);
  assert.equal(fs.inlineSyncs, 1, "the failed sync was the inline one");
  await assert.rejects(() => spool.append([payload("y")]), UnavailableError);
  assert.equal(spool.isWritable(), false);
  assert.equal(spool.currentLsn(), before);
  await spool.close();
});

Deno.test("on real files: a lone writer's fdatasyncs run inline and its records survive a reopen", async () => {
  await withTempDir(async (dir) => {
    const reports: boolean[] = [];
    const observer = { fsyncSeconds: (_seconds: number, inline: boolean) => reports.push(inline) };
    // No flush counts as slow here, so the count is exact whatever the disk.
    const options = {
      walDir: `${dir}/wal`,
      timeline: 1,
      term: 1,
      observer,
      inlineSyncSlowMs: Infinity,
    };
    const spool = await Spool.open(options);
    const commits = WAL_INLINE_SYNC_AFTER_COMMITS + 4;
    await writeAlone(spool, commits, "a");
    await spool.close();
    const expected = [...Array(commits)].map((_, i) => i >= WAL_INLINE_SYNC_AFTER_COMMITS);
    assert.deepEqual(reports, expected);
    const reopened = await Spool.open(options);
    assert.equal(reopened.currentLsn(), commits);
    await reopened.close();
  });
});

Deno.test("on real files: a disk slower than the bound never gets an inline fdatasync", async () => {
  await withTempDir(async (dir) => {
    const reports: boolean[] = [];
    const observer = { fsyncSeconds: (_seconds: number, inline: boolean) => reports.push(inline) };
    // Every flush counts as slow.
    const options = { walDir: `${dir}/wal`, timeline: 1, term: 1, observer, inlineSyncSlowMs: -1 };
    const spool = await Spool.open(options);
    await writeAlone(spool, WAL_INLINE_SYNC_AFTER_COMMITS * 3, "a");
    await spool.close();
    assert.equal(reports.filter((inline) => inline).length, 0);
    assert.equal(reports.length, WAL_INLINE_SYNC_AFTER_COMMITS * 3);
  });
});
