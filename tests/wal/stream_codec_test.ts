// Tests read like SPEC.md 13.1 (control records of a streaming pull). The golden bytes were produced
// independently with Python's struct + zlib.crc32, so they pin the layout and the CRC, not this
// encoder's opinion.

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import { encodeFrameV3 } from "../../src/wal/frame.ts";
import {
  CONTROL_HEADER_BYTES,
  decodeControlRecord,
  decodeStreamRun,
  encodeControlRecord,
  type StreamItem,
} from "../../src/wal/stream_codec.ts";
import { CONTROL_PAYLOAD_BYTES_MAX } from "../../src/core/limits.ts";

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return new Uint8Array(clean.match(/../g)!.map((pair) => parseInt(pair, 16)));
}

const utf8 = new TextEncoder();

/** `{"current_lsn":42,"commit_lsn":42,"term":3,"timeline":1}` as a control record. */
const GOLDEN_CONTROL = hex(`
  52 44 4c 43 01 38 00 00 00 7b 22 63 75 72 72 65 6e 74 5f 6c 73 6e 22 3a 34 32 2c 22 63 6f 6d
  6d 69 74 5f 6c 73 6e 22 3a 34 32 2c 22 74 65 72 6d 22 3a 33 2c 22 74 69 6d 65 6c 69 6e 65 22
  3a 31 7d 7d 37 5e 9a`);
const GOLDEN_RECORD = { currentLsn: 42, commitLsn: 42, term: 3, timeline: 1 };

function frame(lsn: number): Uint8Array {
  const payload = utf8.encode(`{"op":"put","collection":"c","key":"k${lsn}","value":${lsn}}`);
  return encodeFrameV3({
    term: 1,
    ownershipEpoch: 0,
    lsn,
    timestampMs: 1_700_000_000_000,
    payload,
  });
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/** The LSNs and control records of decoded items, in order, for comparisons. */
function summary(items: readonly StreamItem[]): Array<number | string> {
  return items.flatMap((item): Array<number | string> =>
    item.kind === "frames" ? item.frames.map((f) => f.lsn) : [`control@${item.control.currentLsn}`]
  );
}

Deno.test("encodeControlRecord() writes magic, version, length, JSON and the zlib CRC", () => {
  assert.deepEqual(encodeControlRecord(GOLDEN_RECORD), GOLDEN_CONTROL);
});

Deno.test("decodeControlRecord() reads the golden record field by field", () => {
  const result = decodeControlRecord(GOLDEN_CONTROL);
  assert.equal(result.status, "ok");
  if (result.status !== "ok") return;
  assert.deepEqual(result.record, GOLDEN_RECORD);
  assert.equal(result.byteLength, GOLDEN_CONTROL.byteLength);
});

Deno.test("a control record carries slots when given, and unknown fields are ignored", () => {
  const slots = [{ replica_id: "r1", restart_lsn: 7 }];
  const result = decodeControlRecord(encodeControlRecord({ ...GOLDEN_RECORD, slots }));
  assert.ok(result.status === "ok");
  assert.deepEqual(result.record.slots, slots);
  const later = utf8.encode('{"current_lsn":1,"commit_lsn":1,"term":1,"timeline":1,"x":2}');
  const withField = decodeControlRecord(_rebuilt(later));
  assert.ok(withField.status === "ok", "a field added later is skipped");
  assert.deepEqual(withField.record, { currentLsn: 1, commitLsn: 1, term: 1, timeline: 1 });
});

/** A control record around `payload`, CRC and all (for payloads the encoder would not write). */
function _rebuilt(payload: Uint8Array): Uint8Array {
  const body = new Uint8Array(5 + payload.byteLength);
  const view = new DataView(body.buffer);
  view.setUint8(0, 1);
  view.setUint32(1, payload.byteLength, true);
  body.set(payload, 5);
  const crc = new Uint8Array(4);
  // Same CRC the encoder uses: node:zlib's IEEE CRC-32.
  new DataView(crc.buffer).setUint32(0, crc32(body), true);
  return concat([utf8.encode("RDLC"), body, crc]);
}

Deno.test("decodeControlRecord() finds every flipped bit after the magic", () => {
  for (let byte = 4; byte < GOLDEN_CONTROL.byteLength; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = GOLDEN_CONTROL.slice();
      damaged[byte]! ^= 1 << bit;
      const result = decodeControlRecord(damaged);
      assert.notEqual(result.status, "ok", `bit ${bit} of byte ${byte}`);
    }
  }
});

Deno.test("decodeControlRecord() says incomplete for every truncation, corrupt for bad input", () => {
  for (let length = 0; length < GOLDEN_CONTROL.byteLength; length++) {
    assert.equal(decodeControlRecord(GOLDEN_CONTROL.subarray(0, length)).status, "incomplete");
  }
  const badVersion = GOLDEN_CONTROL.slice();
  badVersion[4] = 2;
  assert.deepEqual(decodeControlRecord(badVersion), {
    status: "corrupt",
    reason: "unknown control record version 2",
  });
  const oversize = GOLDEN_CONTROL.slice(0, CONTROL_HEADER_BYTES);
  new DataView(oversize.buffer).setUint32(5, CONTROL_PAYLOAD_BYTES_MAX + 1, true);
  assert.equal(decodeControlRecord(oversize).status, "corrupt", "a length past the bound");
  const notJson = _rebuilt(utf8.encode("{nope"));
  assert.deepEqual(decodeControlRecord(notJson), {
    status: "corrupt",
    reason: "control record payload is not JSON",
  });
  const missing = _rebuilt(utf8.encode('{"current_lsn":1,"term":1,"timeline":1}'));
  assert.equal(decodeControlRecord(missing).status, "corrupt", "commit_lsn is required");
  const negative = _rebuilt(utf8.encode('{"current_lsn":-1,"commit_lsn":1,"term":1,"timeline":1}'));
  assert.equal(decodeControlRecord(negative).status, "corrupt");
});

Deno.test("decodeStreamRun() decodes frames and control records interleaved, in order", () => {
  const body = concat([
    GOLDEN_CONTROL,
    frame(1),
    frame(2),
    encodeControlRecord({ currentLsn: 2, commitLsn: 2, term: 1, timeline: 1 }),
    frame(3),
  ]);
  const run = decodeStreamRun(body);
  assert.equal(run.stop, undefined);
  assert.equal(run.offset, body.byteLength);
  assert.deepEqual(summary(run.items), ["control@42", 1, 2, "control@2", 3]);
  assert.equal(run.items[1]!.kind, "frames", "consecutive frames come as one item");
});

Deno.test("decodeStreamRun() stops at a damaged frame or record and says where", () => {
  const second = frame(2);
  second[50]! ^= 0x01;
  const body = concat([frame(1), second, GOLDEN_CONTROL]);
  const run = decodeStreamRun(body);
  assert.deepEqual(summary(run.items), [1]);
  assert.equal(run.offset, frame(1).byteLength);
  assert.deepEqual(run.stop, { status: "corrupt", reason: "crc mismatch" });
  const garbage = decodeStreamRun(concat([GOLDEN_CONTROL, utf8.encode("HTTP/1.1 200 OK")]));
  assert.equal(garbage.stop?.status, "corrupt", "neither a frame nor a control record");
});

Deno.test("decodeStreamRun() over any cut of a body, carried over, yields the same items", () => {
  const parts = [
    GOLDEN_CONTROL,
    frame(1),
    frame(2),
    encodeControlRecord({ currentLsn: 2, commitLsn: 2, term: 1, timeline: 1 }),
    frame(3),
  ];
  const body = concat(parts);
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: body.byteLength - 1 }), { maxLength: 12 }),
      (cuts) => {
        const sorted = [...cuts].sort((a, b) => a - b);
        const items: StreamItem[] = [];
        let pending = new Uint8Array(0);
        let start = 0;
        for (const end of [...sorted, body.byteLength]) {
          const bytes = concat([pending, body.subarray(start, end)]);
          const run = decodeStreamRun(bytes);
          assert.notEqual(run.stop?.status, "corrupt");
          items.push(...run.items);
          pending = bytes.slice(run.offset);
          start = end;
        }
        assert.equal(pending.byteLength, 0);
        assert.deepEqual(summary(items), ["control@42", 1, 2, "control@2", 3]);
      },
    ),
  );
});
