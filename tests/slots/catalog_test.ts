// Tests read like SPEC.md section 4 ("Catalog file"). Golden bytes were produced independently with
// Python's struct + zlib.crc32, so they pin the layout and the CRC, not this encoder's opinion.
// Damaged catalogs are built by editing a golden one; where a test means to reach a check behind
// the CRC, it recomputes the CRC so that only the intended problem remains.

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import {
  CATALOG_BYTES_MIN,
  CATALOG_REPLICA_ID_BYTES_MAX,
  type CatalogContents,
  decodeCatalog,
  encodeCatalog,
} from "../../src/slots/catalog.ts";
import { INVALIDATION_REASONS, type Slot } from "../../src/slots/slot.ts";
import { CatalogFormatError } from "../../src/core/errors.ts";

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return new Uint8Array(clean.match(/../g)!.map((pair) => parseInt(pair, 16)));
}

/** Appends the CRC-32 of `body` to it. */
function withCrc(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.byteLength + 4);
  out.set(body);
  new DataView(out.buffer).setUint32(body.byteLength, crc32(body), true);
  return out;
}

/** A copy of `catalog` edited by `edit`, with its CRC recomputed so that the CRC check passes. */
function edited(
  catalog: Uint8Array,
  edit: (view: DataView, bytes: Uint8Array) => void,
): Uint8Array {
  const body = catalog.slice(0, catalog.byteLength - 4);
  edit(new DataView(body.buffer), body);
  return withCrc(body);
}

function assertRejects(bytes: Uint8Array, message: RegExp): void {
  assert.throws(() => decodeCatalog(bytes), (error: unknown) => {
    assert.ok(error instanceof CatalogFormatError, `not a CatalogFormatError: ${error}`);
    assert.match(error.message, message);
    assert.equal(error.code, "catalog_corrupt");
    return true;
  });
}

// Version 3, timeline 7, generation 0x01_0203_0405; slots "alpha" (live) and "βeta" (invalidated,
// "wal-removed"), every field a distinct value. Python:
//   catalog(3, 7, 0x0102030405, [
//     slot("alpha", 1000, 1300, 1200, 1100, 1, (1767225600000, None, None)),
//     slot("βeta", 0x0123456789, 0x0123456799, 0x0123456798, 0x0123456797, 0,
//          (1767225700000, "wal-removed", 1767225800000))])
const GOLDEN_V3 = hex(`
  52 44 53 4c 4f 54 30 31 03 00 07 00 00 00 00 00 00 00 05 04 03 02 01 00 00 00 02 00 00 00 05 00
  00 00 61 6c 70 68 61 e8 03 00 00 00 00 00 00 14 05 00 00 00 00 00 00 b0 04 00 00 00 00 00 00 4c
  04 00 00 00 00 00 00 01 00 a8 da 76 9b 01 00 00 00 00 00 00 00 00 00 00 00 00 05 00 00 00 ce b2
  65 74 61 89 67 45 23 01 00 00 00 99 67 45 23 01 00 00 00 98 67 45 23 01 00 00 00 97 67 45 23 01
  00 00 00 00 a0 2e dc 76 9b 01 00 00 00 00 00 00 00 00 00 00 01 0b 00 00 00 77 61 6c 2d 72 65 6d
  6f 76 65 64 01 40 b5 dd 76 9b 01 00 00 00 00 00 00 00 00 00 00 1f b9 e0 0c`);

// Offsets inside GOLDEN_V3 (checked against the Python output).
const VERSION_AT = 8;
const COUNT_AT = 26;
const ALPHA_ID_LENGTH_AT = 30;
const ALPHA_ID_AT = 34;
const ALPHA_RESTART_AT = 39;
const ALPHA_FLUSH_AT = 55;
const ALPHA_APPLY_AT = 63;
const ALPHA_ACTIVE_AT = 71;
const ALPHA_LAST_SEEN_AT = 72;
const ALPHA_REASON_TAG_AT = 88;
const ALPHA_INVALIDATED_TAG_AT = 89;
const BETA_ID_AT = 94;
const BETA_ACTIVE_AT = 131;
const BETA_REASON_AT = 153;
const BODY_BYTES = 181;

const ALPHA: Slot = {
  replicaId: "alpha",
  timeline: 7,
  restartLsn: 1000,
  confirmedWriteLsn: 1300,
  confirmedFlushLsn: 1200,
  confirmedApplyLsn: 1100,
  active: true,
  lastSeenAtUnixMs: 1_767_225_600_000,
  invalidationReason: undefined,
  invalidatedAtUnixMs: undefined,
};

const BETA: Slot = {
  replicaId: "βeta",
  timeline: 7,
  restartLsn: 0x01_2345_6789,
  confirmedWriteLsn: 0x01_2345_6799,
  confirmedFlushLsn: 0x01_2345_6798,
  confirmedApplyLsn: 0x01_2345_6797,
  active: false,
  lastSeenAtUnixMs: 1_767_225_700_000,
  invalidationReason: "wal-removed",
  invalidatedAtUnixMs: 1_767_225_800_000,
};

// Version 2, timeline 4; "east" live, "west" invalidated by "idle-timeout". Python:
//   catalog(2, 4, None, [slot("east", 50, 80, 70, 60, 1, (1700000000001, None, None)),
//     slot("west", 10, 40, 30, 20, 0, (1700000000002, "idle-timeout", 1700000000003))])
const GOLDEN_V2 = hex(`
  52 44 53 4c 4f 54 30 31 02 00 04 00 00 00 00 00 00 00 02 00 00 00 04 00 00 00 65 61 73 74 32 00
  00 00 00 00 00 00 50 00 00 00 00 00 00 00 46 00 00 00 00 00 00 00 3c 00 00 00 00 00 00 00 01 01
  68 e5 cf 8b 01 00 00 00 00 00 00 00 00 00 00 00 00 04 00 00 00 77 65 73 74 0a 00 00 00 00 00 00
  00 28 00 00 00 00 00 00 00 1e 00 00 00 00 00 00 00 14 00 00 00 00 00 00 00 00 02 68 e5 cf 8b 01
  00 00 00 00 00 00 00 00 00 00 01 0c 00 00 00 69 64 6c 65 2d 74 69 6d 65 6f 75 74 01 03 68 e5 cf
  8b 01 00 00 00 00 00 00 00 00 00 00 09 c9 43 84`);

// Version 1, timeline 3; "r1" active, "r2" inactive (no reason fields in v1). Python:
//   catalog(1, 3, None, [slot("r1", 5, 9, 8, 7, 1), slot("r2", 11, 15, 14, 13, 0)])
const GOLDEN_V1 = hex(`
  52 44 53 4c 4f 54 30 31 01 00 03 00 00 00 00 00 00 00 02 00 00 00 02 00 00 00 72 31 05 00 00 00
  00 00 00 00 09 00 00 00 00 00 00 00 08 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 01 02 00 00
  00 72 32 0b 00 00 00 00 00 00 00 0f 00 00 00 00 00 00 00 0e 00 00 00 00 00 00 00 0d 00 00 00 00
  00 00 00 00 e5 0e 5c 96`);

Deno.test("encodeCatalog() writes the golden v3 catalog: sorted ids, every field, the zlib CRC", () => {
  // Given out of order, written sorted by replica id.
  const bytes = encodeCatalog({ timeline: 7, generation: 0x01_0203_0405, slots: [BETA, ALPHA] });
  assert.deepEqual(bytes, GOLDEN_V3);
});

Deno.test("decodeCatalog() reads the golden v3 catalog field by field", () => {
  assert.deepEqual(decodeCatalog(GOLDEN_V3), {
    version: 3,
    timeline: 7,
    generation: 0x01_0203_0405,
    slots: [ALPHA, BETA],
  });
});

Deno.test("decodeCatalog() reads a v2 catalog (reddb's) as generation 0", () => {
  assert.deepEqual(decodeCatalog(GOLDEN_V2), {
    version: 2,
    timeline: 4,
    generation: 0,
    slots: [
      {
        replicaId: "east",
        timeline: 4,
        restartLsn: 50,
        confirmedWriteLsn: 80,
        confirmedFlushLsn: 70,
        confirmedApplyLsn: 60,
        active: true,
        lastSeenAtUnixMs: 1_700_000_000_001,
        invalidationReason: undefined,
        invalidatedAtUnixMs: undefined,
      },
      {
        replicaId: "west",
        timeline: 4,
        restartLsn: 10,
        confirmedWriteLsn: 40,
        confirmedFlushLsn: 30,
        confirmedApplyLsn: 20,
        active: false,
        lastSeenAtUnixMs: 1_700_000_000_002,
        invalidationReason: "idle-timeout",
        invalidatedAtUnixMs: 1_700_000_000_003,
      },
    ],
  });
});

Deno.test("decodeCatalog() reads a v1 catalog: an inactive slot was invalidated by the horizon", () => {
  const common = { timeline: 3, lastSeenAtUnixMs: 0, invalidatedAtUnixMs: undefined };
  assert.deepEqual(decodeCatalog(GOLDEN_V1), {
    version: 1,
    timeline: 3,
    generation: 0,
    slots: [
      {
        ...common,
        replicaId: "r1",
        restartLsn: 5,
        confirmedWriteLsn: 9,
        confirmedFlushLsn: 8,
        confirmedApplyLsn: 7,
        active: true,
        invalidationReason: undefined,
      },
      {
        ...common,
        replicaId: "r2",
        restartLsn: 11,
        confirmedWriteLsn: 15,
        confirmedFlushLsn: 14,
        confirmedApplyLsn: 13,
        active: false,
        invalidationReason: "horizon",
      },
    ],
  });
});

Deno.test("decodeCatalog() decodes an unknown reason string as none, as reddb does", () => {
  const unknown = new TextEncoder().encode("wal-REMOVED"); // same length as "wal-removed"
  const bytes = edited(GOLDEN_V3, (_view, body) => {
    body.set(unknown, BETA_REASON_AT);
    body[BETA_ACTIVE_AT] = 1;
  });
  const beta = decodeCatalog(bytes).slots[1]!;
  assert.equal(beta.invalidationReason, undefined);
  assert.equal(beta.active, true);
  assert.equal(beta.invalidatedAtUnixMs, 1_767_225_800_000);
});

Deno.test("decodeCatalog() treats an inactive slot without a known reason as horizon-invalidated", () => {
  // reddb applies this fix-up when it loads any version; a slot must never come back to life.
  const unknown = new TextEncoder().encode("wal-REMOVED");
  const bytes = edited(GOLDEN_V3, (_view, body) => body.set(unknown, BETA_REASON_AT));
  const beta = decodeCatalog(bytes).slots[1]!;
  assert.equal(beta.invalidationReason, "horizon");
  assert.equal(beta.active, false);
});

Deno.test("decodeCatalog() never calls a slot with a reason active, whatever its active byte", () => {
  const bytes = edited(GOLDEN_V3, (_view, body) => {
    body[BETA_ACTIVE_AT] = 1;
  });
  const beta = decodeCatalog(bytes).slots[1]!;
  assert.equal(beta.invalidationReason, "wal-removed");
  assert.equal(beta.active, false);
});

Deno.test("decodeCatalog() rejects a bad magic", () => {
  const bytes = edited(GOLDEN_V3, (_view, body) => {
    body[2] = 0x58;
  });
  assertRejects(bytes, /bad magic/);
});

Deno.test("decodeCatalog() rejects a bad CRC", () => {
  const bytes = GOLDEN_V3.slice();
  bytes[BODY_BYTES] = bytes[BODY_BYTES]! ^ 0x01;
  assertRejects(bytes, /bad CRC/);
});

Deno.test("decodeCatalog() rejects an unknown version", () => {
  for (const version of [0, 4, 0xffff]) {
    const bytes = edited(GOLDEN_V3, (view) => view.setUint16(VERSION_AT, version, true));
    assertRejects(bytes, new RegExp(`unknown catalog version ${version}\\b`));
  }
});

Deno.test("decodeCatalog() rejects fewer bytes than the smallest catalog", () => {
  for (let length = 0; length < CATALOG_BYTES_MIN; length++) {
    assertRejects(GOLDEN_V3.subarray(0, length), /truncated catalog: \d+ bytes/);
  }
});

Deno.test("decodeCatalog() rejects truncation inside the header and the slots even with a valid CRC", () => {
  // A CRC-valid prefix gets past the CRC check, so the cursor's bounds checks must catch it.
  for (let cut = CATALOG_BYTES_MIN - 4; cut < BODY_BYTES; cut++) {
    assertRejects(withCrc(GOLDEN_V3.slice(0, cut)), /truncated catalog|absurd slot count/);
  }
  assertRejects(withCrc(GOLDEN_V3.slice(0, 22)), /truncated catalog: generation needs 8 bytes/);
  assertRejects(withCrc(GOLDEN_V3.slice(0, 28)), /truncated catalog: slot count/);
  assertRejects(
    withCrc(GOLDEN_V3.slice(0, BETA_REASON_AT + 5)),
    /truncated catalog: slot 1 invalidation reason needs 11 bytes/,
  );
  assertRejects(
    withCrc(GOLDEN_V3.slice(0, BODY_BYTES - 1)),
    /truncated catalog: slot 1 invalidated_at_ms/,
  );
});

Deno.test("decodeCatalog() rejects every proper prefix of a valid catalog", () => {
  for (let length = 0; length < GOLDEN_V3.byteLength; length++) {
    assertRejects(GOLDEN_V3.subarray(0, length), /./);
  }
});

Deno.test("decodeCatalog() rejects trailing bytes between the last slot and the CRC", () => {
  const body = new Uint8Array([...GOLDEN_V3.subarray(0, BODY_BYTES), 0, 0, 0]);
  assertRejects(withCrc(body), /3 trailing bytes after the last slot/);
});

Deno.test("decodeCatalog() rejects trailing bytes after the CRC", () => {
  assertRejects(new Uint8Array([...GOLDEN_V3, 0x00]), /1 trailing bytes after the CRC/);
  assertRejects(new Uint8Array([...GOLDEN_V1, 1, 2, 3, 4, 5]), /5 trailing bytes after the CRC/);
});

Deno.test("decodeCatalog() rejects an option tag other than 0 or 1", () => {
  const reasonTag = edited(GOLDEN_V3, (_view, body) => {
    body[ALPHA_REASON_TAG_AT] = 2;
  });
  assertRejects(reasonTag, /bad option tag 2 for slot 0 invalidation reason/);
  const timeTag = edited(GOLDEN_V3, (_view, body) => {
    body[ALPHA_INVALIDATED_TAG_AT] = 0x80;
  });
  assertRejects(timeTag, /bad option tag 128 for slot 0 invalidated_at_ms/);
});

Deno.test("decodeCatalog() rejects an active byte other than 0 or 1", () => {
  const bytes = edited(GOLDEN_V3, (_view, body) => {
    body[ALPHA_ACTIVE_AT] = 2;
  });
  assertRejects(bytes, /bad active byte 2 in slot 0/);
});

Deno.test("decodeCatalog() rejects invalid UTF-8 in a replica id", () => {
  const stray = edited(GOLDEN_V3, (_view, body) => {
    body[ALPHA_ID_AT] = 0xff;
  });
  assertRejects(stray, /invalid UTF-8 in slot 0 replica id/);
  // "βeta" with its first byte made a lone continuation byte.
  const continuation = edited(GOLDEN_V3, (_view, body) => {
    body[BETA_ID_AT] = 0x80;
  });
  assertRejects(continuation, /invalid UTF-8 in slot 1 replica id/);
});

Deno.test("decodeCatalog() rejects positions out of order (apply <= flush <= write)", () => {
  const applyAboveFlush = edited(GOLDEN_V3, (view) => view.setUint32(ALPHA_APPLY_AT, 1250, true));
  assertRejects(applyAboveFlush, /positions out of order \(apply 1250, flush 1200, write 1300\)/);
  const flushAboveWrite = edited(GOLDEN_V3, (view) => view.setUint32(ALPHA_FLUSH_AT, 1400, true));
  assertRejects(flushAboveWrite, /positions out of order \(apply 1100, flush 1400, write 1300\)/);
});

Deno.test("decodeCatalog() rejects a duplicate replica id", () => {
  // "βeta" is five UTF-8 bytes, like "alpha", so overwriting it keeps the layout.
  const bytes = edited(GOLDEN_V3, (_view, body) => {
    body.set(new TextEncoder().encode("alpha"), BETA_ID_AT);
  });
  assertRejects(bytes, /duplicate replica id "alpha" in slot 1/);
});

Deno.test("decodeCatalog() rejects a slot count the remaining bytes cannot hold, before looping", () => {
  const hostile = edited(GOLDEN_V3, (view) => view.setUint32(COUNT_AT, 0xffff_ffff, true));
  assertRejects(hostile, /absurd slot count 4294967295/);
  const oneTooMany = edited(GOLDEN_V3, (view) => view.setUint32(COUNT_AT, 3, true));
  assertRejects(oneTooMany, /absurd slot count 3/);
});

Deno.test("decodeCatalog() rejects a u64 beyond 2^53-1", () => {
  // The high word 0x0020_0000 makes the value exactly 2^53.
  const bytes = edited(GOLDEN_V3, (view) => view.setUint32(ALPHA_RESTART_AT + 4, 0x20_0000, true));
  assertRejects(bytes, /slot 0 restart_lsn at offset 39 is beyond 2\^53-1/);
});

Deno.test("decodeCatalog() rejects a u128 whose high word is set", () => {
  const bytes = edited(GOLDEN_V3, (_view, body) => {
    body[ALPHA_LAST_SEEN_AT + 8] = 1;
  });
  assertRejects(bytes, /u128 slot 0 last_seen_ms at offset 72 is beyond 2\^53-1/);
});

Deno.test("decodeCatalog() rejects a replica id longer than the bound", () => {
  const bytes = edited(
    GOLDEN_V3,
    (view) => view.setUint32(ALPHA_ID_LENGTH_AT, CATALOG_REPLICA_ID_BYTES_MAX + 1, true),
  );
  assertRejects(bytes, /slot 0 replica id of 1025 bytes at offset 30 exceeds 1024 bytes/);
});

Deno.test("decodeCatalog() accepts a replica id of exactly the bound", () => {
  const replicaId = "é".repeat(CATALOG_REPLICA_ID_BYTES_MAX / 2); // two UTF-8 bytes each
  const slot = { ...ALPHA, replicaId };
  assert.deepEqual(
    decodeCatalog(encodeCatalog({ timeline: 7, generation: 1, slots: [slot] })).slots,
    [
      slot,
    ],
  );
});

Deno.test("decodeCatalog() keeps a leading U+FEFF in a replica id (no BOM stripping)", () => {
  const slot = { ...ALPHA, replicaId: "\ufeffalpha" };
  const decoded = decodeCatalog(encodeCatalog({ timeline: 7, generation: 1, slots: [slot] }));
  assert.equal(decoded.slots[0]!.replicaId, "\ufeffalpha");
});

Deno.test("decodeCatalog() rejects a flipped bit anywhere in a valid catalog", () => {
  for (const golden of [GOLDEN_V3, GOLDEN_V2, GOLDEN_V1]) {
    for (let byte = 0; byte < golden.byteLength; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const damaged = golden.slice();
        damaged[byte] = damaged[byte]! ^ (1 << bit);
        assert.throws(
          () => decodeCatalog(damaged),
          CatalogFormatError,
          `flip of byte ${byte} bit ${bit} went unnoticed`,
        );
      }
    }
  }
});

Deno.test("encodeCatalog() refuses duplicate replica ids", () => {
  const twin = { ...BETA, replicaId: "alpha" };
  assert.throws(
    () => encodeCatalog({ timeline: 7, generation: 1, slots: [ALPHA, twin] }),
    /duplicate replica id "alpha"/,
  );
});

Deno.test("encodeCatalog() refuses positions out of order", () => {
  const cases: Partial<Slot>[] = [
    { confirmedApplyLsn: 1201 },
    { confirmedFlushLsn: 1301 },
    { confirmedApplyLsn: 1400, confirmedFlushLsn: 1350 },
  ];
  for (const change of cases) {
    const slot = { ...ALPHA, ...change };
    assert.throws(
      () => encodeCatalog({ timeline: 7, generation: 1, slots: [slot] }),
      (error: unknown) => error instanceof CatalogFormatError && /out of order/.test(error.message),
    );
  }
});

Deno.test("encodeCatalog() refuses a slot from another timeline", () => {
  assert.throws(
    () => encodeCatalog({ timeline: 8, generation: 1, slots: [ALPHA] }),
    /timeline 7 differs from the catalog's 8/,
  );
});

Deno.test("encodeCatalog() refuses numbers that are not integers in 0..2^53-1", () => {
  const bad: CatalogContents[] = [
    { timeline: -1, generation: 1, slots: [] },
    { timeline: 7, generation: 1.5, slots: [] },
    { timeline: 7, generation: 2 ** 53, slots: [] },
    { timeline: 7, generation: 1, slots: [{ ...ALPHA, restartLsn: -5 }] },
    { timeline: 7, generation: 1, slots: [{ ...ALPHA, lastSeenAtUnixMs: Number.NaN }] },
    { timeline: 7, generation: 1, slots: [{ ...BETA, invalidatedAtUnixMs: 2 ** 60 }] },
    {
      timeline: 7,
      generation: 1,
      slots: [{
        ...ALPHA,
        confirmedWriteLsn: 2 ** 53,
        confirmedFlushLsn: 2 ** 53,
        confirmedApplyLsn: 2 ** 53,
      }],
    },
  ];
  for (const catalog of bad) {
    assert.throws(() => encodeCatalog(catalog), /must be an integer in 0\.\.2\^53-1/);
  }
});

Deno.test("encodeCatalog() refuses ids the decoder would reject or could not give back", () => {
  const long = { ...ALPHA, replicaId: "x".repeat(CATALOG_REPLICA_ID_BYTES_MAX + 1) };
  assert.throws(
    () => encodeCatalog({ timeline: 7, generation: 1, slots: [long] }),
    /replica id of 1025 bytes exceeds 1024 bytes/,
  );
  // A lone surrogate would be written as U+FFFD and read back as a different id.
  const lone = { ...ALPHA, replicaId: "a\ud800" };
  assert.throws(
    () => encodeCatalog({ timeline: 7, generation: 1, slots: [lone] }),
    /not well-formed Unicode/,
  );
  const unknownReason = { ...BETA, invalidationReason: "gone" as Slot["invalidationReason"] };
  assert.throws(
    () => encodeCatalog({ timeline: 7, generation: 1, slots: [unknownReason] }),
    /unknown invalidation reason "gone"/,
  );
});

Deno.test("encodeCatalog() writes the active byte from the reason, not from the active field", () => {
  const bytes = encodeCatalog({
    timeline: 7,
    generation: 0x01_0203_0405,
    slots: [{ ...ALPHA, active: false }, { ...BETA, active: true }],
  });
  assert.deepEqual(bytes, GOLDEN_V3);
});

const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const generatedSlot = fc.record({
  replicaId: fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
  positions: fc.array(u53, { minLength: 3, maxLength: 3 }).map((list) =>
    list.sort((a, b) => a - b)
  ),
  restartLsn: u53,
  active: fc.boolean(),
  lastSeenAtUnixMs: u53,
  invalidationReason: fc.option(fc.constantFrom(...INVALIDATION_REASONS), { nil: undefined }),
  invalidatedAtUnixMs: fc.option(u53, { nil: undefined }),
});
const generatedCatalog = fc.record({
  timeline: u53,
  generation: u53,
  slots: fc.uniqueArray(generatedSlot, { selector: (slot) => slot.replicaId, maxLength: 12 }),
}).map(({ timeline, generation, slots }) => ({
  timeline,
  generation,
  slots: slots.map(({ positions, ...rest }): Slot => ({
    ...rest,
    timeline,
    confirmedApplyLsn: positions[0]!,
    confirmedFlushLsn: positions[1]!,
    confirmedWriteLsn: positions[2]!,
  })),
}));

Deno.test("property: decodeCatalog(encodeCatalog(c)) gives back c, sorted by id, as version 3", () => {
  fc.assert(
    fc.property(generatedCatalog, (catalog) => {
      const expected = catalog.slots
        .map((slot) => ({ ...slot, active: slot.invalidationReason === undefined }))
        .sort((a, b) => (a.replicaId < b.replicaId ? -1 : a.replicaId > b.replicaId ? 1 : 0));
      assert.deepEqual(decodeCatalog(encodeCatalog(catalog)), {
        version: 3,
        timeline: catalog.timeline,
        generation: catalog.generation,
        slots: expected,
      });
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: a flipped bit anywhere in an encoded catalog is rejected", () => {
  fc.assert(
    fc.property(generatedCatalog, fc.nat(), fc.integer({ min: 0, max: 7 }), (catalog, at, bit) => {
      const bytes = encodeCatalog(catalog);
      const index = at % bytes.byteLength;
      bytes[index] = bytes[index]! ^ (1 << bit);
      assert.throws(() => decodeCatalog(bytes), CatalogFormatError);
    }),
    { numRuns: 300 },
  );
});
