/** A primary on real files in a temporary directory, with a controllable clock, for tests. */

import { Primary } from "../../src/replication/primary.ts";
import { type PrimaryOptions } from "../../src/replication/types.ts";
import type { ReplicaState } from "../../src/replication/registry.ts";
import { SlotStore } from "../../src/slots/slot_store.ts";
import { Spool, type SpoolOptions } from "../../src/wal/spool.ts";
import { joinPath } from "../../src/core/files.ts";
import { type Logger, silentLogger } from "../../src/core/log.ts";

/** A clock tests move by hand. */
export class FakeClock {
  now = 1_800_000_000_000;
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** What a fixture hands the test. */
export interface PrimaryFixture {
  dir: string;
  primary: Primary;
  spool: Spool;
  slots: SlotStore;
  kv: Deno.Kv;
  clock: FakeClock;
  /** Closes everything and opens it again on the same files (a clean restart). */
  restart(): Promise<PrimaryFixture>;
}

/** Fixture settings: spool and primary options to override. */
export interface FixtureOptions {
  spool?: Partial<SpoolOptions>;
  primary?: Partial<PrimaryOptions>;
  flushIntervalMs?: number;
  logger?: Logger;
}

/** The primary settings tests start from: no caps, local commits, no minimum retention. */
export const TEST_PRIMARY_DEFAULTS = {
  term: 1,
  timeline: 1,
  region: "local",
  advertiseUrl: "http://127.0.0.1:8787",
  caps: { lagMaxRecords: 0, retainedBytesMax: 0, idleTimeoutMs: 0 },
  retentionIntervalMs: 1000,
  walRetainBytesMin: 0,
  healthyWithinMs: 5000,
  commitPolicyFloor: { kind: "local" as const },
  commitTimeoutMs: 5000,
};

const PAYLOAD = new TextEncoder().encode('{"op":"put","collection":"c","key":"k","value":1}');
/** A payload larger than the smallest segment, so each record fills (and seals) one segment. */
export const SEGMENT_FILLING_PAYLOAD = new Uint8Array(4100).fill(0x20);

/** Appends `count` one-record writes through the primary. */
export async function appendRecords(
  primary: Primary,
  count: number,
  payload = PAYLOAD,
): Promise<void> {
  for (let i = 0; i < count; i++) await primary.append([payload]);
}

async function _open(
  dir: string,
  clock: FakeClock,
  options: FixtureOptions,
): Promise<PrimaryFixture> {
  const logger = options.logger ?? silentLogger;
  const spool = await Spool.open({
    walDir: joinPath(dir, "wal"),
    timeline: 1,
    term: 1,
    logger,
    clock: clock.read,
    ...options.spool,
  });
  const kv = await Deno.openKv(joinPath(dir, "ferry.kv"));
  const slots = await SlotStore.open({
    dataDir: dir,
    kv,
    timeline: 1,
    flushIntervalMs: options.flushIntervalMs ?? 20,
    logger,
  });
  const primary = new Primary({
    spool,
    slots,
    ...TEST_PRIMARY_DEFAULTS,
    logger,
    clock: clock.read,
    ...options.primary,
  });
  const fixture: PrimaryFixture = {
    dir,
    primary,
    spool,
    slots,
    kv,
    clock,
    async restart() {
      await closeFixture(fixture);
      return await _open(dir, clock, options);
    },
  };
  return fixture;
}

/** Closes in reverse order of opening. */
export async function closeFixture(fixture: PrimaryFixture): Promise<void> {
  await fixture.primary.stop();
  await fixture.slots.close();
  fixture.kv.close();
  await fixture.spool.close();
}

/** Runs `fn` with a primary in a fresh temp directory; everything is closed and removed after. */
export async function withPrimary(
  options: FixtureOptions,
  fn: (fixture: PrimaryFixture) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-primary-" });
  const clock = new FakeClock();
  let fixture = await _open(dir, clock, options);
  const holder = { current: fixture };
  const originalRestart = fixture.restart;
  const track = (f: PrimaryFixture): PrimaryFixture => {
    const restart = f.restart;
    f.restart = async () => {
      holder.current = track(await restart());
      return holder.current;
    };
    return f;
  };
  fixture = track({ ...fixture, restart: originalRestart });
  holder.current = fixture;
  try {
    await fn(fixture);
  } finally {
    await closeFixture(holder.current).catch(() => undefined);
    await Deno.remove(dir, { recursive: true });
  }
}

/** The registered replica `id` as status sees it, or undefined. */
export function replicaOf(primary: Primary, id: string): ReplicaState | undefined {
  return primary.replicas().find((replica) => replica.id === id);
}
